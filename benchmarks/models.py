"""Section `models`: inference and training-step time of ResNet50 and
EfficientNetB0 against keras.applications'."""

from benchmarks import _harness, _pairs


def measure(args):
    """Inference and training step of ResNet50 and EfficientNetB0."""
    x, y = _pairs.batch(args, args.batch_size)
    rows = []
    for name, ours, reference in _pairs.model_pairs(args):
        for task, run in (
            ("inference", lambda model: model.predict_on_batch(x)),
            ("training step", lambda model: model.train_on_batch(x, y)),
        ):
            result = _harness.compare(
                lambda run=run, model=ours: run(model),
                lambda run=run, model=reference: run(model),
                repeats=args.repeats,
                warmup=2,
            )
            rows.append(
                {
                    "case": f"{name} {task}",
                    "input": _pairs.describe_input(args, args.batch_size),
                    "goal": 1.0,
                    **result,
                }
            )
            _harness.report(rows[-1])
    return rows
