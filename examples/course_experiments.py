"""The course's CIFAR-10 experiments: one baseline, one setting changed per run.

The baseline is the course's CNN (examples/cifar10_cnn.py: filters 32-64-128,
two convolutions per stage, max pooling) trained with Adam, batch size 32,
shuffled batches, global average pooling, no L2, He initialization, a
constant learning rate, no augmentation and a fixed number of epochs. Each
experiment of `EXPERIMENTS` changes one of these; every run starts from the
same seed, validates on the last tenth of the training images after each
epoch (what the learning-rate reduction and early stopping watch), and is
tested once, on the test split, at the end. Writes into --output:

- `val_accuracy.png`: validation accuracy per epoch, one panel per group of
  experiments, the baseline in each;
- `results.md`: experiment, setting, test accuracy, best validation accuracy,
  epochs trained and seconds per run (printed at the end too);
- `results.json`: the same, with the per-epoch histories.

    python -m examples.course_experiments                  # digits, offline
    python -m examples.course_experiments --only baseline batch_8
    python -m examples.course_experiments --dataset cifar10 --epochs 30 \\
        --data-dir path/to/cifar-10-batches-py
    python -m examples.course_experiments --smoke          # 1 epoch, 32 8x8 images
"""

import argparse
import json
import os
import time
from pathlib import Path

from examples._cli import DATASETS

EPOCHS = 8  # digits: 97-99% best val accuracy; all 15 runs ~15 min on 2 cores (TF)
VALIDATION_SPLIT = 0.1  # the last tenth of the training images
IMAGE_SIZE = 32  # the network's native size; digits are upscaled to it
SEED = 0
OUTPUT = "runs/course_experiments"
# A --smoke run (for CI): 1 epoch on this many training and test images at
# the network's smallest size, run eagerly, since compiling each run's steps
# would cost more than the steps. Few images give few batch shapes (8 and 32),
# which is what eager JAX compiles for.
SMOKE_TRAIN, SMOKE_TEST = 32, 32
SMOKE_SIZE = 8  # cifar10_cnn's smallest input (its registry entry's min_size)
BASELINE = {
    "batch_size": 32,
    "shuffle": True,
    "flatten": False,  # global average pooling
    "l2": None,
    "kernel_initializer": "he_normal",
    "reduce_lr": False,
    "augment": False,
    "filters": 32,  # of the first stage; 64 and 128 after
    "convs_per_stage": 2,
    "downsampling": "max_pool",
    "early_stopping": False,
}
# name: (group, setting, overrides of BASELINE). The baseline belongs to
# every group.
EXPERIMENTS = {
    "baseline": (
        None,
        "Adam, batch 32, shuffle, GAP, no L2, He, fixed LR, no augmentation",
        {},
    ),
    "no_shuffle": ("shuffle", "shuffle off", {"shuffle": False}),
    "batch_8": ("batch size", "batch size 8", {"batch_size": 8}),
    "batch_128": ("batch size", "batch size 128", {"batch_size": 128}),
    "flatten": ("pooling", "Flatten instead of GAP", {"flatten": True}),
    "l2": ("L2 regularization", "L2 1e-4", {"l2": 1e-4}),
    "xavier": (
        "initialization",
        "Xavier (glorot_uniform)",
        {"kernel_initializer": "glorot_uniform"},
    ),
    "reduce_lr": ("learning rate", "reduce on plateau", {"reduce_lr": True}),
    "augment": (
        "augmentation",
        "pad 4 px at 32 + crop, mirror (none on digits): cifar_augmentation",
        {"augment": True},
    ),
    "filters_16": ("filters", "filters 16-32-64", {"filters": 16}),
    "filters_64": ("filters", "filters 64-128-256", {"filters": 64}),
    "depth_1": ("depth", "1 convolution per stage", {"convs_per_stage": 1}),
    "depth_3": ("depth", "3 convolutions per stage", {"convs_per_stage": 3}),
    "strided": (
        "downsampling",
        "stride-2 convolutions instead of max pooling",
        {"downsampling": "strided_conv"},
    ),
    "early_stopping": (
        "early stopping",
        "EarlyStopping, patience 2, best weights",
        {"early_stopping": True},
    ),
}
# ReduceLROnPlateau as the course sets it: halve the learning rate after 2
# epochs without a better validation accuracy.
LR_MONITOR, LR_FACTOR, LR_PATIENCE, MIN_LR = "val_accuracy", 0.5, 2, 1e-5
# EarlyStopping: stop after 2 epochs without a better validation accuracy and
# keep the best epoch's weights.
STOP_MONITOR, STOP_PATIENCE = "val_accuracy", 2


def parse_args(argv):
    """The options, with --epochs resolved (--smoke: 1)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, default="digits")
    parser.add_argument(
        "--data-dir", help="cifar10: a local cifar-10-batches-py folder (offline)"
    )
    parser.add_argument("--epochs", type=int, help=f"default: {EPOCHS}, 1 with --smoke")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=EXPERIMENTS,
        metavar="NAME",
        help=f"run these experiments only, of: {', '.join(EXPERIMENTS)}",
    )
    parser.add_argument("--output", default=OUTPUT, help=f"default: {OUTPUT}")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"1 epoch on {SMOKE_TRAIN} training and {SMOKE_TEST} test images "
        f"at {SMOKE_SIZE}x{SMOKE_SIZE}, eagerly",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=SEED,
        help="initial weights and batch order of every run, and the digits split",
    )
    args = parser.parse_args(argv)
    if args.data_dir is not None and args.dataset != "cifar10":
        parser.error("--data-dir is for --dataset cifar10")
    epochs = args.epochs if args.epochs is not None else 1 if args.smoke else EPOCHS
    if epochs < 1:
        parser.error(f"--epochs must be at least 1, got {epochs}")
    args.epochs = epochs
    return args


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from examples import datasets
from examples._augment import cifar_padding
from keras_blocks import augmentation
from keras_blocks.callbacks import ReduceLROnPlateau
from keras_blocks.models.cifar10_cnn import CIFAR10CNN


def build_model(config, input_shape, classes, mirror=True, seed=0):
    """The CNN of `config`, behind the augmentation layers when it has them
    (active in training only: validation and test images pass unchanged)."""
    model = CIFAR10CNN(
        flatten=config["flatten"],
        l2=config["l2"],
        kernel_initializer=config["kernel_initializer"],
        filters=config["filters"],
        convs_per_stage=config["convs_per_stage"],
        downsampling=config["downsampling"],
        input_shape=input_shape,
        classes=classes,
    )
    if not config["augment"]:
        return model
    channels_last = keras.config.image_data_format() == "channels_last"
    size = input_shape[0] if channels_last else input_shape[1]
    inputs = keras.Input(input_shape)
    # The paper's 4 pixels at 32x32, in proportion at other sizes.
    augment = augmentation.cifar_augmentation(
        size, cifar_padding(size), mirror=mirror, seed=seed
    )
    return keras.Model(inputs, model(augment(inputs)), name="augmented_cifar10_cnn")


def run_experiment(
    name, data, classes, epochs, seed, eager=False, verbose=0, mirror=True
):
    """Trains one experiment from `seed`; returns its result as a dict.

    `mirror`: whether augmentation mirrors images (not for digits).
    """
    group, setting, overrides = EXPERIMENTS[name]
    config = {**BASELINE, **overrides}
    (x_train, y_train), (x_test, y_test) = data
    keras.backend.clear_session()  # frees the previous run's graphs
    keras.utils.set_random_seed(seed)  # the same initial weights and batches
    start = time.perf_counter()
    model = build_model(config, x_train.shape[1:], classes, mirror, seed)
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        run_eagerly=eager,
    )
    callbacks = []
    if config["early_stopping"]:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=STOP_MONITOR,
                patience=STOP_PATIENCE,
                restore_best_weights=True,
            )
        )
    if config["reduce_lr"]:
        callbacks.append(
            ReduceLROnPlateau(
                monitor=LR_MONITOR,
                factor=LR_FACTOR,
                patience=LR_PATIENCE,
                min_lr=MIN_LR,
            )
        )
    # Validation on held-out training images: the test split is used once,
    # below, so no setting is tuned on it.
    split = len(x_train) - max(1, round(len(x_train) * VALIDATION_SPLIT))
    history = model.fit(
        x_train[:split],
        y_train[:split],
        batch_size=config["batch_size"],
        epochs=epochs,
        shuffle=config["shuffle"],
        validation_data=(x_train[split:], y_train[split:]),
        callbacks=callbacks,
        verbose=verbose,
    )
    _, test_accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    seconds = time.perf_counter() - start
    curves = {
        key: [float(v) for v in values] for key, values in history.history.items()
    }
    return {
        "name": name,
        "group": group,
        "setting": setting,
        "config": config,
        "test_accuracy": float(test_accuracy),
        "best_val_accuracy": max(curves["val_accuracy"]),
        "epochs": len(curves["val_accuracy"]),
        "seconds": seconds,
        "history": curves,
    }


def markdown_table(results):
    lines = [
        "| experiment | setting | test accuracy | best val accuracy | epochs "
        "| seconds |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result['name']} | {result['setting']} | "
            f"{result['test_accuracy']:.4f} | {result['best_val_accuracy']:.4f} | "
            f"{result['epochs']} | {result['seconds']:.1f} |"
        )
    return "\n".join(lines)


def plot(results, path, title):
    """Validation accuracy per epoch, one panel per group, the baseline in each."""
    # The Agg canvas directly: no pyplot, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    baseline = [result for result in results if result["group"] is None]
    groups = list(dict.fromkeys(r["group"] for r in results if r["group"] is not None))
    panels = groups or ["baseline"]
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4.5 * columns, 3.5 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, group in zip(axes, panels, strict=False):
        members = [r for r in results if r["group"] == group]
        for result in baseline + members:
            curve = result["history"]["val_accuracy"]
            ax.plot(
                range(1, len(curve) + 1),
                curve,
                marker="o",
                markersize=3,
                label="baseline" if result["group"] is None else result["setting"],
                color="black" if result["group"] is None else None,
                linestyle="--" if result["group"] is None else "-",
            )
        ax.set_title(group)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle(title)
    figure.savefig(path, dpi=100)


def main(argv=None):
    args = parse_args(argv)
    epochs = args.epochs
    names = [name for name in EXPERIMENTS if name in (args.only or EXPERIMENTS)]

    try:
        data = datasets.load(
            args.dataset,
            SMOKE_SIZE if args.smoke else IMAGE_SIZE,
            args.data_dir,
            args.seed,
        )
    except datasets.DatasetUnavailableError as error:
        raise SystemExit(f"error: {error}") from None
    if args.smoke:
        (x_train, y_train), (x_test, y_test) = data
        data = (
            (x_train[:SMOKE_TRAIN], y_train[:SMOKE_TRAIN]),
            (x_test[:SMOKE_TEST], y_test[:SMOKE_TEST]),
        )
    (x_train, _), (x_test, _) = data
    print(
        f"{args.dataset}: {len(x_train)} training, {len(x_test)} test images; "
        f"{len(names)} runs of {epochs} epochs on {keras.config.backend()}"
    )

    results = []
    for index, name in enumerate(names, start=1):
        result = run_experiment(
            name,
            data,
            datasets.CLASSES[args.dataset],
            epochs,
            args.seed,
            eager=args.smoke,
            verbose=0 if args.smoke else 2,
            mirror=datasets.MIRROR_INVARIANT[args.dataset],
        )
        results.append(result)
        print(
            f"[{index}/{len(names)}] {name}: test accuracy "
            f"{result['test_accuracy']:.4f} ({result['seconds']:.0f} s)",
            flush=True,
        )

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    title = (
        f"{args.dataset}, {epochs} epochs, seed {args.seed}, {keras.config.backend()}"
    )
    table = markdown_table(results)
    plot(results, output / "val_accuracy.png", title)
    (output / "results.md").write_text(f"# Course experiments: {title}\n\n{table}\n")
    (output / "results.json").write_text(
        json.dumps(
            {
                "dataset": args.dataset,
                "epochs": epochs,
                "seed": args.seed,
                "backend": keras.config.backend(),
                "smoke": args.smoke,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"\n{table}\n\nWritten to {output}/ (val_accuracy.png, results.md/.json)")
    return results


if __name__ == "__main__":
    main()
