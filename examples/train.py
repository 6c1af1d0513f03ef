"""Train any reference model of keras_blocks.models by name, on digits or CIFAR-10.

    python -m examples.train                            # the demo: CIFAR ResNet-20
    python -m examples.train --model cifar10_cnn --epochs 5
    python -m examples.train --model resnet18 --dataset cifar10 --data-dir ~/cifar10
    python -m examples.train --logdir runs/demo --resume --epochs 30   # continue a run
    python -m examples.train --logdir runs/demo --evaluate-only        # test a run
    python -m examples.train --augment --tta ten_crop   # the papers' crops
    python -m examples.train --distribute mirrored      # every GPU of this machine
    python -m examples.train --model resnet50 --weights resnet50.weights.h5

`--dataset digits` (the default) is scikit-learn's bundled 8x8 digits, resized
to the model's input; `cifar10` downloads through `keras.datasets` or reads a
local copy (`--data-dir`). Everything the run writes goes under `--logdir`:
TensorBoard logs (`tensorboard --logdir runs`: metrics, and from
`keras_blocks.callbacks.TensorBoardImageLogger` predictions on validation
images, a confusion matrix, weight histograms and the learning rate), the
per-epoch metrics (`metrics.csv`), the training curves (`curves.png`), the
run's settings (`run.json`) and the checkpoints of
`keras_blocks.callbacks.CheckpointManager`, which `--resume` continues from
exactly, even after a crash (`--epochs` counts from the run's start; resume
on the backend that trained it; a `--logdir` that holds no run is refused),
and from which `--evaluate-only` reports the test accuracy. Images are
inputs in [0, 1]; models are trained with Adam, sparse categorical
cross-entropy and `keras_blocks`' learning-rate reduction on plateaus.

`--augment` trains with the family's augmentation from
`keras_blocks.augmentation` (AlexNet's random crops, mirrors and PCA colour
for AlexNet, the CIFAR shift and mirror for the CIFAR ResNets and the course
CNN, EfficientNet's for EfficientNet, random crops and mirrors otherwise; no
mirrors on digits), as the model's first layer: the crop recipes take images
of 256/224 the input size (18 for 16) and evaluate their centre crop.
`--tta ten_crop` or `multi_crop` also evaluates the test images with
`keras_blocks.evaluation.evaluate_with_tta` (AlexNet's ten crops or
GoogLeNet's 144) and reports the difference; the crops come from the larger
images of a crop recipe, else from the test images zero-padded as the CIFAR
shift pads them. The test results also go to `test.json`, where each
`--tta` scheme keeps its last result (under its name, with the epochs of the
checkpoint it tested) when another is evaluated.

`--weights` fine-tunes from ImageNet weights converted by
examples/convert_weights.py: every layer but the classifier (a new one for
the dataset's classes, unless it has the file's) starts from the file, at
any input size (convolutions do not depend on it; VGG's and AlexNet's dense
layers after the flatten do, and take the file only at the size it was
converted at, 224). The images are then normalized as the weights' source
expects (torchvision and timm: mean (0.485, 0.456, 0.406), standard deviation
(0.229, 0.224, 0.225), after scaling to [0, 1]) in the data, which run.json
records for `--resume`. A resumed run continues from its checkpoint, which
holds its weights: `--weights` with `--resume` or `--evaluate-only` is
refused.

`--distribute` trains on several devices or machines with the engine of the
backend: `mirrored` or `multi_worker` (TensorFlow, `TF_CONFIG`),
`data_parallel` (JAX, `keras.distribution`) or `ddp` (PyTorch, `torchrun`);
`--cpu-devices N` splits a machine without accelerators into N devices to
try it. `--batch-size` is then the global batch. Only the chief process
writes to `--logdir`, which must be on a filesystem every process sees; the
checkpoints resume on any number of replicas. The docs' "Distributed
training" page has the commands.

A bad input is refused with exit status 2 and a one-line message, as a wrong
argument is: a --logdir that holds a run (without --resume) or none (with
it), other settings than the run's, weights of another model, a missing
dataset, a --distribute choice of another backend.
"""

import argparse
import csv
import json
import os
import re
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python examples/train.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples._cli import (
    DATASETS,
    DISTRIBUTE_CHOICES,
    TTA_SCHEMES,
    DefaultModel,
    HelpFormatter,
    Refusal,
    model_name,
    non_negative_int,
    positive_float,
    positive_int,
    refusing,
)

MODEL = "cifar_resnet20"
EPOCHS = 10
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
VALIDATION_SPLIT = 0.1
SEED = 0
# What must match for --resume to continue a run.
RUN_KEYS = (
    "model",
    "dataset",
    "image_size",
    "batch_size",
    "learning_rate",
    "seed",
    "augment",
)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=HelpFormatter,
        allow_abbrev=False,  # saved_settings reads the options given by name
        epilog="models: `python -m examples.models --list` lists them (the "
        "registry of keras_blocks.models)",
    )
    parser.add_argument(
        "--model",
        type=model_name,
        default=DefaultModel(MODEL),
        metavar="NAME",
        help="see below",
    )
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        default="digits",
        help="digits: offline; cifar10: downloaded, or read from --data-dir",
    )
    parser.add_argument("--data-dir", help="local copy of the dataset (cifar10)")
    parser.add_argument(
        "--image-size",
        type=positive_int,
        help="default: 16 (digits) or 32 (cifar10), or the model's smallest input",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=EPOCHS,
        help="epochs of the whole run, counted from its start when resumed",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=BATCH_SIZE, help="images per step"
    )
    parser.add_argument(
        "--learning-rate",
        type=positive_float,
        default=LEARNING_RATE,
        help="Adam's, before reductions on plateaus",
    )
    parser.add_argument(
        "--augment",
        action="store_true",
        help="train with the family's augmentation (see above)",
    )
    parser.add_argument(
        "--tta",
        choices=TTA_SCHEMES,
        help="also evaluate the test images on AlexNet's ten crops or "
        "GoogLeNet's 144, averaging the softmax (see above)",
    )
    parser.add_argument("--logdir", help="default: runs/MODEL-DATASET")
    parser.add_argument("--resume", action="store_true", help="continue --logdir")
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="train nothing: restore the run in --logdir (its latest checkpoint) "
        "and report its test accuracy",
    )
    parser.add_argument(
        "--distribute",
        choices=DISTRIBUTE_CHOICES,
        help="train on several devices or machines: mirrored or multi_worker "
        "(TensorFlow), data_parallel (JAX), ddp (PyTorch, under torchrun)",
    )
    parser.add_argument(
        "--cpu-devices",
        type=positive_int,
        metavar="N",
        help="with --distribute mirrored or data_parallel on a machine without "
        "accelerators: split its CPU into N devices (to try; no speed-up)",
    )
    parser.add_argument(
        "--sync-bn",
        action="store_true",
        help="with --distribute mirrored or multi_worker: batch normalization "
        "over the global batch (bn_synchronized=True); elsewhere it changes "
        "nothing, as the docs' Distributed training page explains",
    )
    parser.add_argument(
        "--weights",
        metavar="PATH",
        help="start from a *.weights.h5 file of examples/convert_weights.py "
        "(ImageNet weights): every layer but the classifier; see above",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=SEED,
        help="the digits split, the starting weights, shuffling and dropout",
    )
    args = parser.parse_args(argv)
    if args.weights and (args.resume or args.evaluate_only):
        parser.error(
            f"--weights starts a new run from converted weights; "
            f"{'--resume' if args.resume else '--evaluate-only'} uses the run's "
            "checkpoint, which holds its weights already: leave --weights out."
        )
    return args


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from examples import _augment, _distribute, datasets
from examples.models import image_shape
from keras_blocks.callbacks import (
    CheckpointManager,
    ReduceLROnPlateau,
    TensorBoardImageLogger,
)
from keras_blocks.models import get_model, googlenet, model_entry


def build(name, image_size, classes, sync_bn=False, **options):
    """Model `name` of `keras_blocks.models` for `image_size` images;
    `options`: the builder's others (a weights source's layout)."""
    if sync_bn:
        options["bn_synchronized"] = True
    parameters = model_entry(name).parameters  # None: any (EfficientNet's)
    if sync_bn and parameters is not None and "bn_synchronized" not in parameters:
        raise Refusal(f"--sync-bn: {name} has no batch normalization.")
    return get_model(
        name, input_shape=image_shape(image_size), classes=classes, **options
    )


def default_image_size(name, dataset):
    """16x16 for the 8x8 digits, 32x32 for CIFAR-10, or the model's smallest."""
    return max(16 if dataset == "digits" else 32, model_entry(name).min_size)


def accuracy_metric(model):
    """The main output's accuracy in the logs. Keras prefixes a metric with
    its output's name when a model has several (auxiliary heads)."""
    if len(model.outputs) == 1:
        return "accuracy"
    return f"{model.output_names[0]}_accuracy"


def per_output(model, y):
    """The labels once per output: auxiliary heads learn the same labels."""
    return y if len(model.outputs) == 1 else (y,) * len(model.outputs)


def epochs_text(count):
    return f"{count} epoch" + "s" * (count != 1)


class RunCheckpoints(CheckpointManager):
    """The manager of a run's checkpoints, whose refusals at the start of
    training (an index deleted, checkpoints damaged, another process training
    there) end the command with one line in its terms: the library's advice
    is for its Python API (`restore=...`)."""

    action = "train"  # what the command was doing: "resume", "evaluate"

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except ValueError as error:
            # The first sentence says what is wrong; the rest, what to pass.
            problem = re.split(r"(?<=\.)\s+(?=[A-Z])", str(error), maxsplit=1)[0]
            logdir = Path(self.directory).parent
            option = {"resume": "--resume", "evaluate": "--evaluate-only"}
            option = (
                f" (without {option[self.action]})" if self.action in option else ""
            )
            raise Refusal(
                f"Cannot {self.action} the run in {logdir}: "
                f"{problem[0].lower()}{problem[1:]} Put back what is missing "
                f"and run this again, or train a new run with another --logdir"
                f"{option}."
            ) from None


def checkpoint_manager(logdir, resume, seed, model, action="train"):
    """Weights, optimizer, epoch and the reducer's state, for --resume; the
    per-epoch seed makes a resumed run draw what an uninterrupted one would."""
    manager = RunCheckpoints(
        logdir / "checkpoints",
        monitor=f"val_{accuracy_metric(model)}",
        restore="latest" if resume else None,
        seed=seed,
    )
    manager.action = action
    return manager


def callbacks(logdir, resume, validation_data, model, chief=True):
    """TensorBoard logs, plateau LR reduction and the metrics file. Keras'
    loggers write from every process, so only the chief gets them; the
    library's callbacks run everywhere, as their collective steps need, and
    write from the chief only."""
    # TensorBoardImageLogger draws predictions of a single-output classifier:
    # a model with auxiliary heads gets its histograms and learning rate only.
    single = len(model.outputs) == 1
    images = {} if single else {"image_freq": 0, "confusion_matrix_freq": 0}
    loggers = [
        keras.callbacks.TensorBoard(str(logdir)),  # the metrics
        TensorBoardImageLogger(logdir / "images", validation_data, **images),
        # After the two loggers, which log the rate this epoch used (the
        # reducer lowers it for the next), and before the CSV logger, which
        # writes the logs as they are when it runs: the reducer adds
        # `learning_rate` to them.
        ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=3, min_lr=1e-5, verbose=1
        ),
        keras.callbacks.CSVLogger(str(logdir / "metrics.csv"), append=resume),
    ]
    if chief:
        return loggers
    return [
        c
        for c in loggers
        if not isinstance(c, (keras.callbacks.TensorBoard, keras.callbacks.CSVLogger))
    ]


def check_logdir(logdir, run, resume, evaluate_only=False):
    """Never trains over another run; `--resume` and `--evaluate-only` take
    only the same run, on the backend that trained it. Writes nothing."""
    settings = logdir / "run.json"
    if not settings.exists():
        if evaluate_only:
            raise Refusal(
                f"Nothing to evaluate in {logdir}: it holds no run (run.json). "
                "Train one there first, or pass the --logdir of one."
            )
        if resume:  # a mistyped --logdir: never a new run in its place
            raise Refusal(
                f"Nothing to resume in {logdir}: it holds no run (run.json). "
                "Pass the --logdir of a run, or leave out --resume to start a "
                "new run there."
            )
        return False
    if not (resume or evaluate_only):
        raise Refusal(
            f"{logdir} already holds a run. Pass --resume to continue it, or "
            "choose another --logdir."
        )
    previous = json.loads(settings.read_text())
    backend = previous.get("backend", run["backend"])
    if backend != run["backend"]:
        raise Refusal(
            f"The run in {logdir} was trained on {backend}; resume it with "
            f"KERAS_BACKEND={backend} (this is {run['backend']}): each backend "
            "reads only its own checkpoints."
        )
    different = {
        key: (previous.get(key), run[key])
        for key in RUN_KEYS
        if previous.get(key) != run[key]
    }
    if different:
        details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in different.items())
        action = "evaluate" if evaluate_only else "resume"
        raise Refusal(
            f"Cannot {action} the run in {logdir} with other settings ({details}). "
            "Leave these options out to use the run's."
        )
    return True


def saved_settings(args, argv, logdir):
    """With --resume or --evaluate-only, the run's settings (run.json) for the
    options not given on the command line: `--resume --epochs 30` continues
    the run as it was started."""
    settings = logdir / "run.json"
    if not (args.resume or args.evaluate_only) or not settings.exists():
        return args
    previous = json.loads(settings.read_text())
    given = {
        token.split("=")[0][2:].replace("-", "_")
        for token in (sys.argv[1:] if argv is None else argv)
        if token.startswith("--")
    }
    for key in RUN_KEYS:
        if key not in given and key in previous:
            setattr(args, key, previous[key])
    return args


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


def pretrained_weights(path, name):
    """What `path`, a file of examples/convert_weights.py, records (model,
    source, classes, size, preprocessing), checked against model `name`."""
    from examples import convert_weights  # it imports this module

    try:
        metadata = convert_weights.read_metadata(path)
    except ValueError as error:
        raise Refusal(f"--weights: {error}") from None
    if metadata["model"] != name:
        raise Refusal(
            f"--weights: {path} holds weights of {metadata['model']}, not "
            f"{name}: pass --model {metadata['model']}"
            f"{convert_weights.no_weights_hint(name)}."
        )
    return {
        "file": str(path),
        "source": metadata["source"],
        "mean": metadata["mean"],
        "std": metadata["std"],
    }


def run_weights(logdir):
    """The `weights` record of the run in `logdir` (None: none, or no run)."""
    settings = logdir / "run.json"
    if not settings.exists():
        return None
    return json.loads(settings.read_text()).get("weights")


def normalized(data, weights):
    """Images in [0, 1] normalized per channel as the weights' source expects
    (unchanged without weights)."""
    if weights is None:
        return data
    shape = (
        (1, -1, 1, 1) if keras.config.image_data_format() == "channels_first" else (-1,)
    )
    mean = np.reshape(np.asarray(weights["mean"], "float32"), shape)
    std = np.reshape(np.asarray(weights["std"], "float32"), shape)
    x, y = data
    return (x - mean) / std, y


def load_weights(net, name, weights):
    """The converted weights into `net`; prints what was loaded."""
    from examples import convert_weights

    try:
        _, loaded, kept = convert_weights.load_converted(net, weights["file"], name)
    except ValueError as error:
        raise Refusal(f"--weights: {error}") from None
    values = convert_weights.loaded_values(net, loaded)
    print(
        f"Weights from {weights['file']} ({weights['source']}): {len(loaded)} "
        f"layers, {values:,} values"
        + (f"; a new {', '.join(kept)} layer (other classes)." if kept else ".")
    )


def load(dataset, image_size, data_dir, seed):
    """Training, validation and test data: the last tenth of the training
    images validates, as `validation_split` would."""
    try:
        (x_train, y_train), test = datasets.load(dataset, image_size, data_dir, seed)
    except datasets.DatasetUnavailableError as error:
        raise Refusal(str(error)) from None
    split = int(len(x_train) * (1 - VALIDATION_SPLIT))
    return (x_train[:split], y_train[:split]), (x_train[split:], y_train[split:]), test


def build_and_compile(
    name,
    image_size,
    dataset,
    learning_rate,
    seed,
    layers,
    size,
    sync_bn=False,
    weights=None,
    load=True,
):
    """(model, net): `net` takes `image_size` images (the crops); the model
    trained is `net` behind the augmentation `layers` (None: `net` itself),
    taking `size` images. `weights` (a `pretrained_weights` record): `net` is
    built in its source's layout, and starts from its file when `load`."""
    keras.utils.set_random_seed(seed)
    options = {}
    if weights is not None:
        from examples import convert_weights

        options = convert_weights.build_options(name, weights["source"])
    try:
        net = build(name, image_size, datasets.CLASSES[dataset], sync_bn, **options)
    except ValueError as error:  # such as an image size the model cannot take
        raise Refusal(str(error)) from None
    if weights is not None and load:
        load_weights(net, name, weights)
    model = net if layers is None else _augment.with_augmentation(net, layers, size)
    compile_model(model, learning_rate)
    return model, net


def train(model, args, logdir, resume, train_data, validation_data, engine):
    """Trains up to `args.epochs` in all; returns the checkpoint manager (its
    `epoch`: the epochs the run has done), the history and the seconds."""
    action = "resume" if resume else "train"
    manager = checkpoint_manager(logdir, resume, args.seed, model, action)
    (x_train, y_train), (x_val, y_val) = train_data, validation_data
    start = time.perf_counter()
    history = engine.fit(
        model,
        x_train,
        per_output(model, y_train),
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(x_val, per_output(model, y_val)),
        callbacks=[
            manager,
            *callbacks(logdir, resume, validation_data, model, engine.is_chief),
        ],
    )
    return manager, history, time.perf_counter() - start


def restore(model, logdir, train_data, seed, engine):
    """The run's latest checkpoint into `model`; returns the manager."""
    manager = checkpoint_manager(logdir, True, seed, model, "evaluate")
    # The manager restores at the start of `fit`; zero epochs train nothing.
    # Keras reads a first batch even so: an image for each replica.
    x, y = (data[: engine.replicas] for data in train_data)
    engine.fit(
        model,
        x,
        per_output(model, y),
        batch_size=engine.replicas,
        epochs=0,
        callbacks=[manager],
    )
    if manager.latest_checkpoint is None:
        raise Refusal(
            f"Nothing to evaluate in {logdir}: the run saved no checkpoint (it "
            "stopped during its first epoch). Pass --resume to train it."
        )
    return manager


def evaluate(model, x_test, y_test, engine):
    """Test accuracy of the main output."""
    classifier = googlenet.inference_model(model)  # without aux heads
    classifier.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    _, accuracy = classifier.evaluate(
        **engine.test_data(x_test, y_test, batch_size=256), verbose=0
    )
    return accuracy


def main(argv=None):
    args = parse_args(argv)
    with refusing("train.py"):
        # First: a TensorFlow strategy must exist before anything uses a device.
        engine = _distribute.start(args.distribute, args.cpu_devices)
        logdir = Path(args.logdir or f"runs/{args.model}-{args.dataset}")
        return train_and_test(args, argv, engine, logdir)


def train_and_test(args, argv, engine, logdir):
    """Trains and tests; only the chief process writes files to `logdir`."""
    args = saved_settings(args, argv, logdir)
    image_size = args.image_size or default_image_size(args.model, args.dataset)
    run = {
        "model": args.model,
        "dataset": args.dataset,
        "image_size": image_size,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "augment": args.augment,
        "backend": keras.config.backend(),
    }
    try:
        resume, failure = (
            check_logdir(logdir, run, args.resume, args.evaluate_only),
            None,
        )
    except SystemExit as error:
        resume, failure = args.resume, error
    if failure is None:
        try:
            engine.check_batch_size(args.batch_size)
        except SystemExit as error:
            failure = error
    weights = None
    if failure is None and args.weights:
        try:
            weights = pretrained_weights(args.weights, args.model)
        except SystemExit as error:
            failure = error
    engine.agree(failure)  # every process checked before any writes
    run["weights"] = weights  # a record: --resume takes it from run.json
    if weights is None and (resume or args.evaluate_only):
        weights = run_weights(logdir)  # normalize as the run did
    # Nothing is written before the data are loaded and the model is built:
    # a start that fails leaves --logdir free for the next try.
    kind = _augment.recipe(model_entry(args.model).family, args.augment)
    size = _augment.data_size(image_size, kind)
    train_data, validation_data, test_data = (
        normalized(data, weights)
        for data in load(args.dataset, size, args.data_dir, args.seed)
    )
    x_test, y_test = test_data
    layers = None
    if kind is not None:
        layers = _augment.augmentation_layers(
            kind, image_size, args.dataset, train_data[0], args.seed
        )
    with engine.scope():
        model, net = build_and_compile(
            args.model,
            image_size,
            args.dataset,
            args.learning_rate,
            args.seed,
            layers,
            size,
            args.sync_bn,
            weights,
            load=bool(args.weights),
        )
    print(
        f"{args.model} on {args.dataset} at {image_size}x{image_size}: "
        f"{len(train_data[0])} training, {len(validation_data[0])} validation "
        f"and {len(x_test)} test images, logs in {logdir}"
        f"{' (resumed)' if resume and not args.evaluate_only else ''}"
    )
    if layers is not None:
        steps = ", ".join(layer.__class__.__name__ for layer in layers.layers)
        print(f"Augmentation ({layers.name}, {size}x{size} images): {steps}")
    if engine.choice is not None:
        cluster = engine.cluster
        print(
            f"Distributed ({engine.choice}): {engine.replicas} replicas, process "
            f"{cluster.process_index} of {cluster.process_count}"
            f"{' (chief)' if engine.is_chief else ', writing no logs'}; global "
            f"batch {args.batch_size}."
        )

    if args.evaluate_only:
        manager = restore(model, logdir, train_data, args.seed, engine)
        how = f"restored from {manager.latest_checkpoint}, no training"
    else:
        # A resumed run's run.json holds these settings already.
        if engine.is_chief and not resume:
            logdir.mkdir(parents=True, exist_ok=True)
            (logdir / "run.json").write_text(json.dumps(run, indent=2))
        model.summary()
        manager, history, seconds = train(
            model, args, logdir, resume, train_data, validation_data, engine
        )
        if not history.epoch:
            print(
                f"Nothing left to do: the run in {logdir} has done "
                f"{epochs_text(manager.epoch)}, and --epochs {args.epochs} "
                "counts from its start. Pass --epochs M with M > "
                f"{manager.epoch} to train more, or --evaluate-only to report "
                "its test accuracy."
            )
            return None
        curves = logdir / "curves.png"
        if engine.is_chief:
            plot_curves(logdir / "metrics.csv", curves, accuracy_metric(model))
        how = f"{seconds:.0f} s of training; curves in {curves}"

    with engine.scope():
        accuracy = evaluate(model, x_test, y_test, engine)
    single = "centre crop" if size > image_size else "whole images"
    print(
        f"Backend {keras.config.backend()}: test accuracy {accuracy:.4f} on "
        f"{len(x_test)} held-out images ({single}) after "
        f"{epochs_text(manager.epoch)} ({how})."
    )
    results = {
        "epochs": manager.epoch,
        "augment": kind,
        "accuracy": float(accuracy),
        "tta": {},
    }
    if args.tta:
        tta_accuracy, crops = _augment.evaluate_crops(
            net, x_test, y_test, args.tta, image_size, kind, args.dataset
        )
        results["tta"][args.tta] = {
            "crops": crops,
            "accuracy": tta_accuracy,
            "epochs": manager.epoch,
        }
        print(
            f"With {args.tta} ({crops} crops per image"
            f"{'' if datasets.MIRROR_INVARIANT[args.dataset] else ', no mirrors'}, "
            "softmax averaged): test "
            f"accuracy {tta_accuracy:.4f}, {tta_accuracy - accuracy:+.4f} against "
            f"the {single}."
        )
    if engine.is_chief:
        path = logdir / "test.json"
        path.write_text(json.dumps(with_earlier_tta(path, results), indent=2))
    return accuracy


def with_earlier_tta(path, results):
    """`results` with the --tta results of `path` (test.json) for the schemes
    not evaluated this time: each scheme keeps its last result, with the
    epochs of the checkpoint it tested."""
    if not path.exists():
        return results
    previous = json.loads(path.read_text())
    earlier = dict(previous.get("tta") or {})
    if "scheme" in earlier:  # an older test.json: one scheme, its keys inside
        earlier = {earlier.pop("scheme"): {**earlier, "epochs": previous["epochs"]}}
    return {**results, "tta": {**earlier, **results["tta"]}}


if __name__ == "__main__":
    main()
