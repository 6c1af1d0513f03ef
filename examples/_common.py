"""What the reference models in examples/ share: input, classifier and command line.

Each family file (alexnet.py, vgg.py, ...) defines a stage table, one builder
and a `MODELS` dict of named configurations; `model_main` gives each of them the
same command line:

    python examples/resnet.py --help
    python examples/resnet.py --model resnet50           # summary and counts
    python examples/resnet.py --model resnet50 --smoke   # + one train step
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

POOLINGS = (None, "avg", "max")
SMOKE_BATCH = 2


def image_input(input_shape, default_size, min_size, model_name, flattens=None):
    """`keras.Input` for RGB images, checked against the model's smallest size.

    `input_shape=None` gives `default_size` square images in the configured
    `keras.config.image_data_format()`. `flattens` names the setting under
    which the model flattens a feature map into dense layers (such as
    `"include_top=True"`), which needs a known height and width.
    """
    channels_last = keras.config.image_data_format() == "channels_last"
    if input_shape is None:
        input_shape = image_shape(default_size)
    input_shape = tuple(input_shape)
    sizes = input_shape[:2] if channels_last else input_shape[1:]
    layout = (
        "(height, width, channels)" if channels_last else "(channels, height, width)"
    )
    if len(input_shape) != 3 or any(
        size is not None and (not isinstance(size, int) or size < min_size)
        for size in sizes
    ):
        raise ValueError(
            f"Invalid value for argument `input_shape`. {model_name} needs a "
            f"shape {layout} with sizes of at least {min_size}. "
            f"Received: input_shape={input_shape}"
        )
    if flattens and None in input_shape:
        raise ValueError(
            f"Invalid value for argument `input_shape`. With {flattens}, "
            f"{model_name} needs a fully known input shape (it flattens a "
            f"feature map into dense layers). Received: input_shape={input_shape}"
        )
    return keras.Input(input_shape)


def classifier(x, include_top, classes, pooling, classifier_activation, dropout=0.0):
    """Global average pooling and a dense classifier, or the pooling alone.

    This is the head of keras.applications' models, with their layer names
    (`avg_pool`, `max_pool`, `predictions`).
    """
    if pooling not in POOLINGS:
        raise ValueError(
            "Invalid value for argument `pooling`. Expected one of (None, 'avg', "
            f"'max'). Received: pooling={pooling!r}"
        )
    if include_top:
        check_classes(classes)
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)  # (batch, c)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        return keras.layers.Dense(
            classes, activation=classifier_activation, name="predictions"
        )(x)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def check_classes(classes):
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ValueError(
            "Invalid value for argument `classes`. Expected a strictly positive "
            f"integer. Received: classes={classes!r}"
        )


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected one of "
            f"{tuple(choices)}. Received: {name}={value!r}"
        )


def trainable_count(model):
    """Trainable parameters, as PyTorch counts them (no BN moving statistics)."""
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def model_main(models, description, min_size, argv=None):
    """Builds a model of `models` by name, prints it, optionally trains one step."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", choices=sorted(models), default=next(iter(models)))
    parser.add_argument(
        "--input-size", type=int, help="image height and width (default: native)"
    )
    parser.add_argument("--classes", type=int, help="default: the model's")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"build at the smallest size ({min_size}) unless --input-size is "
        "given, and run one training step and one prediction on random images",
    )
    parser.add_argument("--no-summary", action="store_true")
    args = parser.parse_args(argv)

    size = args.input_size or (min_size if args.smoke else None)
    shape = None if size is None else image_shape(size)
    start = time.perf_counter()
    kwargs = {} if args.classes is None else {"classes": args.classes}
    model = models[args.model](input_shape=shape, **kwargs)
    seconds = time.perf_counter() - start
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


def image_shape(size):
    """The shape of one `size` x `size` RGB image in the configured data format."""
    if keras.config.image_data_format() == "channels_last":
        return (size, size, 3)
    return (3, size, size)
