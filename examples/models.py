"""Build any reference model of `keras_blocks.models` by name: its summary,
its parameter counts, and optionally one training step.

    python -m examples.models --list                       # every model
    python -m examples.models --list "resnet*"             # a pattern
    python -m examples.models --model resnet50             # summary and counts
    python -m examples.models --model resnet50 --smoke     # + one train step
    python -m examples.models --model resnet18 --weights resnet18-f37072fd.pth
"""

import argparse
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python examples/models.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples._cli import (
    DefaultModel,
    HelpFormatter,
    Refusal,
    model_name,
    positive_int,
    refusing,
)

SMOKE_BATCH = 2


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--model", type=model_name, default=DefaultModel("resnet50"))
    parser.add_argument(
        "--list",
        nargs="?",
        const="*",
        metavar="PATTERN",
        help="list the models (matching a shell-style PATTERN) and exit",
    )
    parser.add_argument(
        "--input-size",
        type=positive_int,
        help="image height and width (default: the model's; with --smoke, "
        "its smallest)",
    )
    parser.add_argument("--classes", type=positive_int, help="default: the model's")
    parser.add_argument(
        "--weights",
        metavar="PATH",
        help="a weights file (torchvision's or timm's state dict, "
        "keras.applications' .h5, or a .weights.h5 of this model), or "
        "'imagenet' (keras.applications') or 'torchvision', which download",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="build at the model's smallest size unless --input-size is "
        "given, and run one training step and one prediction on random images",
    )
    parser.add_argument("--no-summary", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from keras_blocks.models import get_model, list_models, model_entry


def image_shape(size):
    """One `size` x `size` RGB image in `keras.config.image_data_format()`."""
    if keras.config.image_data_format() == "channels_last":
        return (size, size, 3)
    return (3, size, size)


def trainable_count(model):
    """Trainable parameters, as PyTorch counts them (no BN moving statistics)."""
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def main(argv=None):
    args = parse_args(argv)
    if args.list is not None:
        names = list_models(args.list)
        if not names:
            with refusing("models.py"):
                raise Refusal(f"No model matches {args.list!r}: --list lists them all.")
        for name in names:
            entry = model_entry(name)
            sources = ", ".join(entry.weights) or "-"
            print(
                f"{name:<22} {entry.family:<16} default {entry.default_size:>3}, "
                f"smallest {entry.min_size:>3}; weights: {sources}"
            )
        return None
    entry = model_entry(args.model)
    size = args.input_size or (entry.min_size if args.smoke else None)
    options = {} if size is None else {"input_shape": image_shape(size)}
    if args.classes is not None:
        options["classes"] = args.classes
    start = time.perf_counter()
    with refusing("models.py"):
        try:
            model = get_model(args.model, weights=args.weights, **options)
        except (ValueError, FileNotFoundError) as error:
            raise Refusal(error) from None
    seconds = time.perf_counter() - start
    if args.weights:
        print(f"{args.model}: weights from {args.weights}")
    if not args.no_summary:
        model.summary()
    print(
        f"{args.model}: {model.count_params():,} parameters, "
        f"{trainable_count(model):,} trainable (built in {seconds:.1f} s)"
    )
    if args.smoke:
        smoke_step(model)
    return model


def smoke_step(model, batch_size=SMOKE_BATCH, seed=0):
    """One training step and one prediction on random images; returns the loss."""
    classes = model.outputs[0].shape[-1]
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (batch_size, *model.input_shape[1:])).astype("float32")
    labels = rng.integers(0, classes, batch_size)
    outputs = len(model.outputs)
    model.compile(
        optimizer="sgd",
        loss=["sparse_categorical_crossentropy"] * outputs,
    )
    loss = model.train_on_batch(images, (labels,) * outputs if outputs > 1 else labels)
    predictions = model.predict_on_batch(images)
    first = predictions[0] if outputs > 1 else predictions
    print(f"one step: loss {np.ravel(loss)[0]:.4f}, predictions {first.shape}")
    return loss


if __name__ == "__main__":
    main()
