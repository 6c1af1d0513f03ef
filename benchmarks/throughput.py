"""Section `throughput`: training images/second of the same pairs as
`models`, on a batch that stays on the device."""

from benchmarks import _harness, _pairs


def measure(args):
    """Training throughput in images/second: `--throughput-steps` training
    steps on one synthetic batch that stays on the device, per timed call."""
    x, y = _pairs.batch(args, args.throughput_batch_size)
    steps = args.throughput_steps
    images = steps * args.throughput_batch_size

    def train(model):
        for _ in range(steps):
            loss = model.train_on_batch(x, y)
        return float(loss)  # waits for the last step

    rows = []
    for name, ours, reference in _pairs.model_pairs(args):
        result = _harness.compare(
            lambda ours=ours: train(ours),
            lambda reference=reference: train(reference),
            args.repeats,
            warmup=1,
        )
        rows.append(
            {
                "case": f"{name} training throughput",
                "input": f"{_pairs.describe_input(args, args.throughput_batch_size)}, "
                f"{steps} steps a call",
                "goal": 1.0,
                "ours_images_per_s": images / result["ours_s"],
                "reference_images_per_s": images / result["reference_s"],
                **result,
            }
        )
        _harness.report(rows[-1])
        print(
            f"  {'':<48} {rows[-1]['ours_images_per_s']:.1f} images/s against "
            f"{rows[-1]['reference_images_per_s']:.1f}",
            flush=True,
        )
    return rows
