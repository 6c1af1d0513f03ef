"""What the reference models in examples/ share: input, classifier and command line.

Each family file (alexnet.py, vgg.py, ...) defines a stage table, one builder
and a `MODELS` dict of named configurations; `model_main` gives each of them the
same command line:

    python -m examples.resnet --help
    python -m examples.resnet --model resnet50           # summary and counts
    python -m examples.resnet --model resnet50 --smoke   # + one train step
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from examples._cli import model_parser
from keras_blocks import _builders, layers
from keras_blocks import _validation as check
from keras_blocks._builders import image_shape  # in the configured data format

POOLINGS = (None, "avg", "max")
SMOKE_BATCH = 2


def image_input(input_shape, default_size, min_size, model_name, flattens=None):
    """`keras.Input` for RGB images, checked against the model's smallest size.

    `input_shape=None` gives `default_size` square images in the configured
    `keras.config.image_data_format()`. `flattens` names the setting under
    which the model flattens a feature map into dense layers (such as
    `"include_top=True"`), which needs a known height and width.
    """
    input_shape = _builders.input_shape(
        input_shape,
        default_size,
        min_size,
        keras.config.image_data_format(),
        f"{model_name} needs a shape {{layout}} with sizes of at least {min_size}.",
    )
    if flattens and None in input_shape:
        raise ValueError(
            f"Invalid value for argument `input_shape`. With {flattens}, "
            f"{model_name} needs a fully known input shape (it flattens a "
            f"feature map into dense layers). Received: input_shape={input_shape}"
        )
    return keras.Input(input_shape)


def classifier(x, include_top, classes, pooling, classifier_activation, dropout=0.0):
    """Global average pooling and a dense classifier, or the pooling alone:
    the head of keras.applications' models, as `keras_blocks.efficientnet`
    builds it."""
    check.choice("pooling", pooling, POOLINGS)
    if include_top:
        check.positive_int("classes", classes)
    return _builders.classifier_head(
        x, include_top, classes, pooling, classifier_activation, dropout
    )


def dense_head(x, units, dropout, names, classes, classifier_activation):
    """AlexNet's and VGG's top: flatten, then a ReLU dense layer and dropout per
    pair of `names` (layer, dropout), then the classifier `predictions`."""
    x = keras.layers.Flatten(name="flatten")(x)  # (batch, h * w * c)
    for dense_name, dropout_name in names:
        x = keras.layers.Dense(units, activation="relu", name=dense_name)(x)
        x = layers.Dropout(dropout, name=dropout_name)(x)
    return keras.layers.Dense(
        classes, activation=classifier_activation, name="predictions"
    )(x)


def trainable_count(model):
    """Trainable parameters, as PyTorch counts them (no BN moving statistics)."""
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def model_main(models, description, min_size, argv=None, min_sizes=None):
    """Builds a model of `models` by name, prints it, optionally trains one step.

    `min_size` is the smallest input of the family; `min_sizes` maps the names
    of the models whose smallest input is larger to theirs.
    """
    min_sizes = min_sizes or {}
    sizes = {name: min_sizes.get(name, min_size) for name in models}
    args = model_parser(description, sizes).parse_args(argv)

    smallest = min_sizes.get(args.model, min_size)
    size = args.input_size or (smallest if args.smoke else None)
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
