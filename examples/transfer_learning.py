"""Transfer learning: a pretrained backbone, a new head, then fine-tuning.

The course's workflow, in two phases:

1. The backbone (the model without its classifier, `include_top=False`,
   global average pooling) is frozen, and a new head (dropout and a dense
   softmax for the dataset's classes) is trained alone at `--learning-rate`.
2. The backbone's top `--unfreeze` stages (ResNet's conv5_x, VGG's block5,
   EfficientNet's `top`, GoogLeNet's inception_5x, ...: layers grouped by the
   name before their first number) are unfrozen, and the whole model trains
   on at the lower `--fine-tune-learning-rate`.

Frozen means inference mode for batch normalization: in Keras 3 a
`BatchNormalization` with `trainable=False` normalizes with its moving
statistics and never updates them. The backbone's BN layers stay frozen in
phase 2 too (as in Keras' fine-tuning guides): a small dataset's batch
statistics would overwrite ImageNet's, and the unfrozen convolutions learn
against the same normalization.

    python examples/convert_weights.py --model resnet50 --source torchvision \\
        --input resnet50-11ad3fa6.pth --output resnet50.weights.h5
    python -m examples.transfer_learning --model resnet50 \\
        --weights resnet50.weights.h5 --data-dir path/to/images --image-size 224
    python -m examples.transfer_learning          # offline: digits, random backbone
    python -m examples.transfer_learning --smoke  # CI: 1 epoch each, 64 images

Data: `--data-dir` is a folder with one subfolder of images per class (at
least 2, each holding images: an empty one is refused), read with
`keras.utils.image_dataset_from_directory` (a fifth validates); without it,
scikit-learn's bundled digits (offline), upsampled to the model's input.

Preprocessing: images are scaled to [0, 1] in the data pipeline, and the
model's first layer (`input_normalization`, a `keras.layers.Normalization`)
standardizes them as the weights' source did: torchvision and timm, mean
(0.485, 0.456, 0.406) and standard deviation (0.229, 0.224, 0.225). The
trained model therefore takes images in [0, 1].

`--weights` is a file of examples/convert_weights.py; the backbone takes every
layer of it but the classifier, at any input size. Without it the backbone
starts from random weights, which the run says: the workflow runs, but there
is nothing to transfer. Everything goes under `--logdir`: TensorBoard logs
(metrics, and from `keras_blocks.callbacks.TensorBoardImageLogger`
predictions, a confusion matrix, histograms and the learning rate), the
checkpoints of `keras_blocks.callbacks.CheckpointManager` (one folder per
phase), `metrics.csv`, the curves of both phases (`curves.png`),
`results.json` and the fine-tuned classifier, `model.keras`.

`model.keras` takes RGB images in [0, 1] (it normalizes them itself), of the
run's `--image-size`, in the data format it was trained in, and gives one
probability per class, in the order of `classes` in `results.json` (the
sorted folder names; the digits 0 ... 9). Resize images as training did,
bilinearly (`load_img`'s default is nearest), to the model's input size (the
default run's is 32x32); for a model trained channels_last:

    import json, keras, numpy as np
    import keras_blocks  # registers its layers, which the file names
    model = keras.saving.load_model("runs/transfer-resnet18/model.keras")
    classes = json.load(open("runs/transfer-resnet18/results.json"))["classes"]
    size = model.input_shape[1:3]  # (height, width)
    image = keras.utils.load_img("cat.jpg", target_size=size, interpolation="bilinear")
    x = keras.utils.img_to_array(image, data_format="channels_last") / 255.0
    print(classes[int(np.argmax(model.predict(x[None], verbose=0)[0]))])

A reloaded model keeps which layers were frozen at the end of the last
phase (down to the batch normalizations inside the blocks), and the
optimizer state in the file fits it: it trains further as it was
fine-tuned. To train other layers, set `trainable` (as `set_trainable`
does) and compile it again.

A bad input is refused with exit status 2 and a one-line message, as a wrong
argument is, before anything is written: a --logdir that already holds a run,
a --data-dir that is not a folder, holds one class or a class folder without
images, a --weights file of another model, an --unfreeze above the stages.
"""

import argparse
import csv
import json
import os
import re
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python examples/transfer_learning.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples._cli import (
    DefaultModel,
    HelpFormatter,
    Refusal,
    model_name,
    non_negative_int,
    positive_float,
    positive_int,
    refusing,
)

MODEL = "resnet18"
HEAD_EPOCHS = 3
FINE_TUNE_EPOCHS = 3
BATCH_SIZE = 32
LEARNING_RATE = 1e-3  # the head's
FINE_TUNE_LEARNING_RATE = 1e-4  # lower: the backbone's weights move little
UNFREEZE = 1  # top stages of the backbone trained in phase 2
DROPOUT = 0.2
VALIDATION_SPLIT = 0.2
SEED = 0
MODEL_FILE = "model.keras"  # the fine-tuned classifier, in --logdir
SMOKE_IMAGES = 64  # --smoke: training images (and half as many validating)
STAGE = re.compile(r"\D*\d+")  # "conv5_block2" -> "conv5", "block6a" -> "block6"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter, allow_abbrev=False
    )
    parser.add_argument(
        "--model",
        type=model_name,
        default=DefaultModel(MODEL),
        metavar="NAME",
        help="a model of keras_blocks.models (convert_weights.py --list: those "
        "with published weights)",
    )
    parser.add_argument(
        "--weights", metavar="PATH", help="a file of examples/convert_weights.py"
    )
    parser.add_argument(
        "--data-dir", help="a folder of class subfolders (default: the digits)"
    )
    parser.add_argument(
        "--image-size",
        type=positive_int,
        help="default: the model's smallest input, at least 32",
    )
    parser.add_argument(
        "--head-epochs", type=positive_int, default=HEAD_EPOCHS, help="phase 1"
    )
    parser.add_argument(
        "--fine-tune-epochs",
        type=non_negative_int,
        default=FINE_TUNE_EPOCHS,
        help="phase 2 (0: none)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=BATCH_SIZE, help="images per step"
    )
    parser.add_argument(
        "--learning-rate", type=positive_float, default=LEARNING_RATE, help="head"
    )
    parser.add_argument(
        "--fine-tune-learning-rate",
        type=positive_float,
        default=FINE_TUNE_LEARNING_RATE,
        help="phase 2",
    )
    parser.add_argument(
        "--unfreeze",
        type=positive_int,
        default=UNFREEZE,
        help="top stages of the backbone trained in phase 2",
    )
    parser.add_argument(
        "--logdir",
        help="default: runs/transfer-MODEL; one that already holds a run (its "
        "results.json or a checkpoint) is refused: each run has its own",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=SEED,
        help="the split, the head's starting weights, shuffling, dropout",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE_IMAGES} training images, 1 epoch per phase (for CI)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from examples import convert_weights, datasets
from examples.models import image_shape
from keras_blocks import layers
from keras_blocks.callbacks import (
    CheckpointManager,
    ReduceLROnPlateau,
    TensorBoardImageLogger,
)
from keras_blocks.layers.image_preprocessing import IMAGENET_MEAN, IMAGENET_STDDEV
from keras_blocks.models import model_entry
from keras_blocks.porting import weight_layers


def stages(backbone):
    """The backbone's layers with weights, grouped into stages in their order:
    [(stage name, [layers])]. A layer's stage is its name up to its first
    number (conv5_block1 and conv5_block2: conv5); a name without one (stem,
    top) is a stage of its own."""
    grouped = {}
    for layer in backbone.layers:
        if layer.weights:
            match = STAGE.match(layer.name)
            grouped.setdefault(match[0] if match else layer.name, []).append(layer)
    return list(grouped.items())


def set_trainable(backbone, unfreeze):
    """Freezes the backbone but its top `unfreeze` stages; batch normalization
    stays frozen everywhere (inference mode). Returns the unfrozen stages."""
    top = stages(backbone)[len(stages(backbone)) - unfreeze :] if unfreeze else []
    unfrozen = {id(layer) for _, stage_layers in top for layer in stage_layers}
    backbone.trainable = bool(unfreeze)
    for layer in backbone.layers:
        layer.trainable = id(layer) in unfrozen
    for leaf in weight_layers(backbone).values():
        if isinstance(leaf, keras.layers.BatchNormalization):
            leaf.trainable = False
    return [name for name, _ in top]


def build_backbone(name, image_size, weights):
    """The model without its classifier; with `weights` (a converted file),
    in its source's layout and loaded. Returns (backbone, metadata)."""
    builder = model_entry(name).builder
    metadata, options = None, {}
    if weights:
        metadata = convert_weights.read_metadata(weights)
        options = convert_weights.build_options(name, metadata["source"])
    backbone = builder(
        input_shape=image_shape(image_size),
        include_top=False,
        pooling="avg",
        **options,
    )
    if weights:
        _, loaded, _ = convert_weights.load_converted(backbone, weights, name)
        values = convert_weights.loaded_values(backbone, loaded)
        print(
            f"Backbone {name} from {weights} ({metadata['source']}'s "
            f"{metadata['input']}): {len(loaded)} layers, {values:,} values."
        )
    else:
        print(
            f"Backbone {name}: RANDOM weights (no --weights file given). The "
            "workflow runs, but there is nothing to transfer: convert ImageNet "
            "weights with examples/convert_weights.py and pass --weights."
        )
    return backbone, metadata


def build_model(backbone, classes, mean, std, dropout=DROPOUT):
    """Images in [0, 1] -> the source's normalization -> backbone -> new head."""
    channels_first = keras.config.image_data_format() == "channels_first"
    inputs = keras.Input(backbone.input_shape[1:])
    x = keras.layers.Normalization(
        axis=1 if channels_first else -1,
        mean=list(mean),
        variance=[s**2 for s in std],
        name="input_normalization",
    )(inputs)
    x = backbone(x)  # (batch, features): include_top=False, pooling="avg"
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{backbone.name}_transfer")


def load_data(data_dir, image_size, batch_size, seed, limit=None):
    """(training, validation, class names): arrays from the digits, or
    tf.data datasets of batches from an image folder, images in [0, 1]."""
    if data_dir is None:
        (x, y), _ = datasets.load("digits", image_size, seed=seed)
        if limit:
            x, y = x[: limit + limit // 2], y[: limit + limit // 2]
        split = limit if limit else int(len(x) * (1 - VALIDATION_SPLIT))
        names = [str(digit) for digit in range(datasets.CLASSES["digits"])]
        return (x[:split], y[:split]), (x[split:], y[split:]), names
    if not Path(data_dir).is_dir():
        raise Refusal(f"--data-dir: {data_dir} is not a folder.")
    try:
        training, validation = keras.utils.image_dataset_from_directory(
            data_dir,
            image_size=(image_size, image_size),
            batch_size=batch_size,
            validation_split=VALIDATION_SPLIT,
            subset="both",
            seed=seed,
            data_format=keras.config.image_data_format(),
        )
    except ValueError as error:  # no images, one class, ...
        raise Refusal(f"--data-dir: {error}") from None
    names = list(training.class_names)
    # Keras makes a class of every subfolder, one without images included.
    counts = dict.fromkeys(names, 0)
    for path in (*training.file_paths, *validation.file_paths):
        counts[Path(os.path.relpath(path, data_dir)).parts[0]] += 1
    empty = [name for name, count in counts.items() if not count]
    if len(names) < 2 or empty:  # refused before anything trains or writes
        raise Refusal(
            f"--data-dir: {data_dir} "
            + (
                f"has class folders without images ({', '.join(empty)})"
                if empty
                else f"holds one class folder ({names[0]})"
            )
            + ": a classifier needs at least 2, one subfolder of images per class."
        )
    if limit:  # whole batches: the datasets keep a known length
        batches = -(-limit // batch_size)
        training, validation = training.take(batches), validation.take(batches)
    scaled = (
        dataset.map(lambda x, y: (x / 255.0, y)).prefetch(2)
        for dataset in (training, validation)
    )
    return *scaled, names


def phase_callbacks(logdir, phase, validation, names, append):
    """Checkpoints (a folder per phase), TensorBoard and image logs, the
    plateau reduction and the metrics file, as examples/train.py has them."""
    return [
        CheckpointManager(
            logdir / "checkpoints" / phase, monitor="val_accuracy", restore=None
        ),
        keras.callbacks.TensorBoard(str(logdir)),
        TensorBoardImageLogger(logdir / "images", validation, class_names=names),
        ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=2, min_lr=1e-6, verbose=1
        ),
        keras.callbacks.CSVLogger(str(logdir / "metrics.csv"), append=append),
    ]


def fit_phase(model, data, epochs, initial_epoch, learning_rate, callbacks, batch):
    """Compiles (the trainable flags take effect at compile) and fits."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    training, validation = data
    # A dataset is batched, and shuffled by image_dataset_from_directory.
    fit = {"batch_size": batch} if isinstance(training, tuple) else {"shuffle": False}
    inputs = (*training,) if isinstance(training, tuple) else (training,)
    return model.fit(
        *inputs,
        epochs=epochs,
        initial_epoch=initial_epoch,
        validation_data=validation,
        callbacks=callbacks,
        **fit,
    )


def trainable_values(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def plot_curves(metrics_csv, path, fine_tune_start):
    """Loss and accuracy per epoch, both phases, fine-tuning marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_csv, newline="") as file:
        rows = list(csv.DictReader(file))
    epochs = [int(row["epoch"]) + 1 for row in rows]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = [float(row[prefix + metric]) for row in rows]
            axis.plot(epochs, values, marker="o", label=label)
        axis.axvline(fine_tune_start + 0.5, color="grey", linestyle="--")
        axis.set(xlabel="epoch (fine-tuning after the dashed line)", title=metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None):
    args = parse_args(argv)
    with refusing("transfer_learning.py"):
        return run(args)


def run(args):
    """Both phases of a parsed command line; returns (model, results)."""
    if args.smoke:
        args.head_epochs, args.fine_tune_epochs = 1, min(args.fine_tune_epochs, 1)
    logdir = Path(args.logdir or f"runs/transfer-{args.model}")
    # A run that saved a checkpoint or its results; the empty folders of a
    # start that failed are none.
    saved = (logdir / "checkpoints").rglob("*")
    if (logdir / "results.json").exists() or any(path.is_file() for path in saved):
        raise Refusal(f"{logdir} already holds a run: choose another --logdir.")
    image_size = args.image_size or max(32, model_entry(args.model).min_size)
    # The data first: nothing is built or written for a folder that fails.
    training, validation, names = load_data(
        args.data_dir,
        image_size,
        args.batch_size,
        args.seed,
        SMOKE_IMAGES if args.smoke else None,
    )
    keras.utils.set_random_seed(args.seed)
    try:
        backbone, metadata = build_backbone(args.model, image_size, args.weights)
    except ValueError as error:
        raise Refusal(str(error)) from None
    count = len(stages(backbone))
    if args.unfreeze > count:
        raise Refusal(
            f"--unfreeze {args.unfreeze}: {args.model}'s backbone has {count} "
            f"stages ({', '.join(name for name, _ in stages(backbone))})."
        )
    if metadata is not None:
        mean, std = metadata["mean"], metadata["std"]
    else:  # what the converted files of torchvision and timm expect
        mean, std = IMAGENET_MEAN, IMAGENET_STDDEV
    model = build_model(backbone, len(names), mean, std)
    data = (training, validation)
    logdir.mkdir(parents=True, exist_ok=True)
    print(
        f"{args.model} at {image_size}x{image_size}, {len(names)} classes "
        f"({'digits' if args.data_dir is None else args.data_dir}); inputs in "
        f"[0, 1], normalized in the model with mean {tuple(mean)}, std "
        f"{tuple(std)}; logs in {logdir}"
    )

    start = time.perf_counter()
    set_trainable(backbone, 0)
    print(
        f"Phase 1: the new head alone, backbone frozen (BN in inference mode): "
        f"{trainable_values(model):,} trainable values, learning rate "
        f"{args.learning_rate:g}."
    )
    callbacks = phase_callbacks(logdir, "head", validation, names, append=False)
    history = fit_phase(
        model, data, args.head_epochs, 0, args.learning_rate, callbacks, args.batch_size
    )
    histories = [history.history]
    unfrozen = []
    if args.fine_tune_epochs:
        unfrozen = set_trainable(backbone, args.unfreeze)
        print(
            f"Phase 2: fine-tuning {', '.join(unfrozen)} and the head (BN kept "
            f"frozen): {trainable_values(model):,} trainable values, learning "
            f"rate {args.fine_tune_learning_rate:g}."
        )
        callbacks = phase_callbacks(logdir, "fine_tune", validation, names, True)
        history = fit_phase(
            model,
            data,
            args.head_epochs + args.fine_tune_epochs,
            args.head_epochs,
            args.fine_tune_learning_rate,
            callbacks,
            args.batch_size,
        )
        histories.append(history.history)
    seconds = time.perf_counter() - start
    plot_curves(logdir / "metrics.csv", logdir / "curves.png", args.head_epochs)
    accuracy = [a for h in histories for a in h["val_accuracy"]]
    results = {
        "model": args.model,
        "weights": args.weights,
        "source": None if metadata is None else metadata["source"],
        "image_size": image_size,
        "classes": names,
        "unfrozen": unfrozen,
        "val_accuracy": accuracy,
        "seconds": seconds,
        "backend": keras.config.backend(),
    }
    (logdir / "results.json").write_text(json.dumps(results, indent=2))
    model_path = logdir / MODEL_FILE
    model.save(model_path)
    print(
        f"Saved the fine-tuned model to {model_path}: RGB images in [0, 1], "
        f"{image_size}x{image_size} -> probabilities of the {len(names)} classes "
        f"in results.json's order ({', '.join(names[:5])}"
        f"{', ...' if len(names) > 5 else ''})."
    )
    print(
        f"Validation accuracy {accuracy[args.head_epochs - 1]:.4f} after the "
        f"head, {accuracy[-1]:.4f} at the end ({seconds:.0f} s; curves in "
        f"{logdir / 'curves.png'})."
        + ("" if args.weights else " The backbone started from random weights.")
    )
    return model, results


if __name__ == "__main__":
    main()
