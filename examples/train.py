"""Train any reference model of examples/ by name, on digits (offline) or CIFAR-10.

    python -m examples.train                            # the demo: CIFAR ResNet-20
    python -m examples.train --model cifar10_cnn --epochs 5
    python -m examples.train --model resnet18 --dataset cifar10 --data-dir ~/cifar10
    python -m examples.train --logdir runs/demo --resume --epochs 30   # continue a run

`--dataset digits` (the default) is scikit-learn's bundled 8x8 digits, resized
to the model's input; `cifar10` downloads through `keras.datasets` or reads a
local copy (`--data-dir`). Everything the run writes goes under `--logdir`:
TensorBoard logs (`tensorboard --logdir runs`: metrics, and from
`keras_blocks.callbacks.TensorBoardImageLogger` predictions on validation
images, a confusion matrix, weight histograms and the learning rate), the
per-epoch metrics (`metrics.csv`), the training curves (`curves.png`), the
run's settings (`run.json`) and the checkpoints of
`keras_blocks.callbacks.CheckpointManager`, which `--resume` continues from
exactly, even after a crash. Images are inputs in [0, 1]; models are trained
with Adam, sparse categorical cross-entropy and `keras_blocks`' learning-rate
reduction on plateaus.
"""

import argparse
import csv
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from examples import (
    alexnet,
    cifar10_cnn,
    cifar_resnet,
    datasets,
    efficientnet,
    googlenet,
    resnet,
    vgg,
)
from examples._common import image_shape
from keras_blocks.callbacks import (
    CheckpointManager,
    ReduceLROnPlateau,
    TensorBoardImageLogger,
)

FAMILIES = (cifar_resnet, cifar10_cnn, resnet, alexnet, vgg, googlenet, efficientnet)
# name: (builder, smallest input size)
MODELS = {
    name: (builder, getattr(family, "MIN_SIZES", {}).get(name, family.MIN_SIZE))
    for family in FAMILIES
    for name, builder in family.MODELS.items()
}
MODEL = "cifar_resnet20"
EPOCHS = 10
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
VALIDATION_SPLIT = 0.1
SEED = 0
# What must match for --resume to continue a run.
RUN_KEYS = ("model", "dataset", "image_size", "batch_size", "learning_rate", "seed")


def build(name, image_size, classes):
    builder, _ = MODELS[name]
    return builder(input_shape=image_shape(image_size), classes=classes)


def default_image_size(name, dataset):
    """16x16 for the 8x8 digits, 32x32 for CIFAR-10, or the model's smallest."""
    return max(16 if dataset == "digits" else 32, MODELS[name][1])


def accuracy_metric(model):
    """The main output's accuracy in the logs. Keras prefixes a metric with
    its output's name when a model has several (auxiliary heads)."""
    if len(model.outputs) == 1:
        return "accuracy"
    return f"{model.output_names[0]}_accuracy"


def callbacks(logdir, resume, validation_data, seed, model):
    """Checkpoints, TensorBoard logs, the metrics file and plateau LR reduction."""
    # TensorBoardImageLogger draws predictions of a single-output classifier:
    # a model with auxiliary heads gets its histograms and learning rate only.
    single = len(model.outputs) == 1
    images = {} if single else {"image_freq": 0, "confusion_matrix_freq": 0}
    return [
        # Weights, optimizer, epoch and the reducer's state, for --resume; the
        # per-epoch seed makes a resumed run draw what an uninterrupted would.
        CheckpointManager(
            logdir / "checkpoints",
            monitor=f"val_{accuracy_metric(model)}",
            restore="latest" if resume else None,
            seed=seed,
        ),
        keras.callbacks.CSVLogger(str(logdir / "metrics.csv"), append=resume),
        keras.callbacks.TensorBoard(str(logdir)),  # the metrics
        TensorBoardImageLogger(logdir / "images", validation_data, **images),
        ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=3, min_lr=1e-5, verbose=1
        ),
    ]


def check_logdir(logdir, run, resume):
    """Never trains over another run; `--resume` continues only the same run."""
    settings = logdir / "run.json"
    if not settings.exists():
        if resume:
            print(f"Nothing to resume in {logdir}: starting a new run.")
        return False
    if not resume:
        raise SystemExit(
            f"{logdir} already holds a run. Pass --resume to continue it, or "
            "choose another --logdir."
        )
    previous = json.loads(settings.read_text())
    different = {
        key: (previous.get(key), run[key])
        for key in RUN_KEYS
        if previous.get(key) != run[key]
    }
    if different:
        details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in different.items())
        raise SystemExit(
            f"Cannot resume the run in {logdir} with other settings ({details})."
        )
    return True


def plot_curves(metrics_csv, path, accuracy="accuracy"):
    """Loss and accuracy per epoch, training and validation, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_csv, newline="") as file:
        rows = list(csv.DictReader(file))
    epochs = [int(row["epoch"]) + 1 for row in rows]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", accuracy), strict=True):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = [float(row[prefix + metric]) for row in rows]
            axis.plot(epochs, values, marker="o", label=label)
        axis.set(xlabel="epoch", ylabel=metric, title=metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def compile_model(model, learning_rate):
    outputs = len(model.outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=["sparse_categorical_crossentropy"] * outputs,
        # The main output first; auxiliary heads (googlenet_aux) weigh less.
        loss_weights=[1.0] + [googlenet.AUX_LOSS_WEIGHT] * (outputs - 1),
        metrics=["accuracy"] + [None] * (outputs - 1),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="models: " + ", ".join(MODELS),
    )
    parser.add_argument("--model", choices=MODELS, default=MODEL, metavar="NAME")
    parser.add_argument("--dataset", choices=datasets.DATASETS, default="digits")
    parser.add_argument("--data-dir", help="local copy of the dataset (cifar10)")
    parser.add_argument(
        "--image-size",
        type=int,
        help="default: 16 (digits) or 32 (cifar10), or the model's smallest input",
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    parser.add_argument("--logdir", help="default: runs/MODEL-DATASET")
    parser.add_argument("--resume", action="store_true", help="continue --logdir")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)

    image_size = args.image_size or default_image_size(args.model, args.dataset)
    logdir = Path(args.logdir or f"runs/{args.model}-{args.dataset}")
    run = {
        "model": args.model,
        "dataset": args.dataset,
        "image_size": image_size,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "backend": keras.config.backend(),
    }
    resume = check_logdir(logdir, run, args.resume)
    try:
        (x_train, y_train), (x_test, y_test) = datasets.load(
            args.dataset, image_size, args.data_dir, args.seed
        )
    except datasets.DatasetUnavailableError as error:
        raise SystemExit(str(error)) from None
    keras.utils.set_random_seed(args.seed)
    try:
        model = build(args.model, image_size, datasets.CLASSES[args.dataset])
    except ValueError as error:  # such as an image size the model cannot take
        raise SystemExit(str(error)) from None
    compile_model(model, args.learning_rate)
    # Written once the run can start: a refused one leaves the directory free.
    logdir.mkdir(parents=True, exist_ok=True)
    (logdir / "run.json").write_text(json.dumps(run, indent=2))
    model.summary()
    print(
        f"{args.model} on {args.dataset} at {image_size}x{image_size}: "
        f"{len(x_train)} training images, {len(x_test)} test images, logs in "
        f"{logdir}{' (resumed)' if resume else ''}"
    )
    # The last tenth of the training images validates, as `validation_split`.
    split = int(len(x_train) * (1 - VALIDATION_SPLIT))
    (x_train, x_val), (y_train, y_val) = (
        (a[:split], a[split:]) for a in (x_train, y_train)
    )

    def per_output(y):  # auxiliary heads (googlenet_aux) learn the same labels
        return y if len(model.outputs) == 1 else (y,) * len(model.outputs)

    start = time.perf_counter()
    model.fit(
        x_train,
        per_output(y_train),
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(x_val, per_output(y_val)),
        callbacks=callbacks(logdir, resume, (x_val, y_val), args.seed, model),
    )
    seconds = time.perf_counter() - start
    plot_curves(logdir / "metrics.csv", logdir / "curves.png", accuracy_metric(model))
    classifier = googlenet.inference_model(model)  # without aux heads
    classifier.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    _, accuracy = classifier.evaluate(x_test, y_test, batch_size=256, verbose=0)
    epochs = f"{args.epochs} epoch" + "s" * (args.epochs != 1)
    print(
        f"Backend {keras.config.backend()}: test accuracy {accuracy:.4f} on "
        f"{len(x_test)} held-out images after {epochs} "
        f"({seconds:.0f} s of training); curves in {logdir / 'curves.png'}."
    )
    return accuracy


if __name__ == "__main__":
    main()
