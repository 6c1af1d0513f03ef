"""Section `models`: inference and training-step time of ResNet50 and
EfficientNetB0 against keras.applications'.

The goals: inference at least 1.15x faster (a ratio of at most 1 / 1.15,
which our units reach by folding each batch normalization into the
convolution before it), a training step at least as fast.
"""

from benchmarks import _harness, _pairs

GOALS = {"inference": 1 / 1.15, "training step": 1.0}


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
                warmup=1 if args.smoke else 2,  # the first call traces
            )
            rows.append(
                {
                    "case": f"{name} {task}",
                    "input": _pairs.describe_input(args, args.batch_size),
                    "goal": GOALS[task],
                    **result,
                }
            )
            _harness.report(rows[-1])
    return rows
