"""What augmentation and test-time crops change, measured for the course page.

    python -m tools.augmentation_effect                  # 3 seeds, digits, ~10 min
    python -m tools.augmentation_effect --seeds 0 1 2 3 4 --epochs 10

1. Trains the demo (`examples/train.py`'s default model, CIFAR ResNet-20 on
   the digits) once per seed without and once with `--augment`, each evaluated
   on whole test images and with `--tta ten_crop`, and prints the test
   accuracies per seed with their mean and standard deviation.
2. Times `PCAColorAugmentation` on a batch against one training step of the
   demo model on the same batch (median of repeated calls, after warm-up).
Writes `augmentation_effect.json` into --output.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

SEEDS = (0, 1, 2)
REPEATS = 20


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    # Default: the demo's, examples/train.py's EPOCHS (train imports Keras).
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--output", default="runs/augmentation_effect")
    return parser.parse_args(argv)


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from examples import train
from keras_blocks.layers import PCAColorAugmentation


def accuracies(seed, epochs, augment, workdir):
    logdir = Path(workdir) / f"seed{seed}-{'augment' if augment else 'plain'}"
    argv = ["--epochs", str(epochs), "--seed", str(seed), "--logdir", str(logdir)]
    argv += ["--tta", "ten_crop"] + (["--augment"] if augment else [])
    train.main(argv)
    saved = json.loads((logdir / "test.json").read_text())
    return saved["accuracy"], saved["tta"]["ten_crop"]["accuracy"]


def median_seconds(function, repeats=REPEATS):
    function()  # warm-up: tracing and compilation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def colour_cost(batch_size, image_size):
    """(seconds of PCAColorAugmentation, seconds of a training step) per batch."""
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(batch_size, image_size, image_size, 3))
    images = images.astype("float32")
    labels = rng.integers(0, 10, batch_size)
    colour = PCAColorAugmentation.imagenet(seed=0)
    model, _ = train.build_and_compile(
        train.MODEL, image_size, "digits", train.LEARNING_RATE, 0, None, image_size
    )

    def augment():
        keras.ops.convert_to_numpy(colour(images, training=True))

    def step():
        model.train_on_batch(images, labels)

    return median_seconds(augment), median_seconds(step)


def summary(values):
    return {
        "values": values,
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def main(argv=None):
    args = parse_args(argv)
    if args.epochs is None:
        args.epochs = train.EPOCHS

    rows = {}
    with tempfile.TemporaryDirectory() as workdir:
        for augment in (False, True):
            plain, crops = [], []
            for seed in args.seeds:
                accuracy, tta = accuracies(seed, args.epochs, augment, workdir)
                plain.append(accuracy)
                crops.append(tta)
            rows["augment" if augment else "plain"] = {
                "whole": summary(plain),
                "ten_crop": summary(crops),
            }
    costs = {}
    for batch, size in ((64, 16), (64, 32)):
        colour, step = colour_cost(batch, size)
        costs[f"{batch}x{size}x{size}"] = {
            "colour_seconds": colour,
            "step_seconds": step,
            "ratio": colour / step,
        }
    result = {
        "backend": keras.config.backend(),
        "model": train.MODEL,
        "dataset": "digits",
        "epochs": args.epochs,
        "seeds": args.seeds,
        "accuracy": rows,
        "colour_cost": costs,
    }
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "augmentation_effect.json").write_text(json.dumps(result, indent=2))
    print("| training | evaluation | " + " | ".join(f"seed {s}" for s in args.seeds))
    for name, row in rows.items():
        for scheme, stats in row.items():
            values = " | ".join(f"{v:.4f}" for v in stats["values"])
            print(
                f"| {name} | {scheme} | {values} | {stats['mean']:.4f} "
                f"+- {stats['std']:.4f} |"
            )
    for shape, cost in costs.items():
        print(
            f"{shape}: colour {cost['colour_seconds'] * 1e3:.2f} ms, step "
            f"{cost['step_seconds'] * 1e3:.1f} ms ({cost['ratio']:.1%})"
        )
    return result


if __name__ == "__main__":
    main()
