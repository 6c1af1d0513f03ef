"""What the reference model families share: the input and the classifier.

Each family module (alexnet.py, vgg.py, ...) defines a stage table, one
builder and a `MODELS` dict of named configurations, which it registers in
`keras_blocks.models`' registry.
"""

import warnings

import keras

from keras_blocks import _builders, layers
from keras_blocks import _validation as check

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


def renamed_layout(builder, old, value, layout):
    """The `layout` that a builder's former option `old` (ResNet's
    `keras_applications=`, AlexNet's and GoogLeNet's `variant=`) asks for,
    with a FutureWarning that names the new one; `layout` when it is None."""
    if value is None:
        return layout
    new = value if old == "variant" else ("keras_applications" if value else "paper")
    warnings.warn(
        f"{builder}({old}={value!r}) is now {builder}(layout={new!r}): `{old}` "
        "will be removed.",
        FutureWarning,
        stacklevel=3,
    )
    return new
