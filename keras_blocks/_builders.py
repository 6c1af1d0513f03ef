"""What every model builder shares: the input shape and the classifier head.

`keras_blocks.efficientnet` and the reference models of `examples/` build
their input and their top from these, so that a model of either has the
input checks, layer names and head of keras.applications' models.
"""

import keras

from keras_blocks import _validation as check
from keras_blocks.layers.dropout import Dropout


def image_shape(size, data_format=None):
    """The shape of one `size` x `size` RGB image in `data_format` (default:
    the configured `keras.config.image_data_format()`)."""
    if (data_format or keras.config.image_data_format()) == "channels_last":
        return (size, size, 3)
    return (3, size, size)


def input_shape(value, default_size, min_size, data_format, requirement):
    """The shape of one image: `value`, or `default_size` square RGB images.

    A given shape must have 3 axes, known channels, and heights and widths
    that are None or at least `min_size`. Otherwise a ValueError says
    `requirement`, in which `{layout}` stands for the axes in `data_format`.
    """
    channels_last = data_format == "channels_last"
    if value is None:
        return image_shape(default_size, data_format)
    shape = tuple(value) if isinstance(value, list | tuple) else ()
    if len(shape) == 3:
        channels = shape[-1] if channels_last else shape[0]
        spatial = shape[:2] if channels_last else shape[1:]
        if _is_size(channels, 1) and all(
            size is None or _is_size(size, min_size) for size in spatial
        ):
            return shape
    layout = (
        "(height, width, channels)" if channels_last else "(channels, height, width)"
    )
    raise ValueError(
        "Invalid value for argument `input_shape`. "
        f"{requirement.format(layout=layout)} Received: input_shape={value!r}"
    )


def _is_size(value, minimum):
    return check._is_int(value) and value >= minimum


def classifier_head(
    x,
    include_top,
    classes,
    pooling,
    classifier_activation,
    dropout_rate=0.0,
    dropout_name="dropout",
    kernel_initializer="glorot_uniform",
    data_format=None,
):
    """keras.applications' top: global average pooling, dropout and the dense
    classifier (`include_top=True`), or the `pooling` alone (`"avg"`, `"max"`
    or None: the feature map). The layers are named as there (`avg_pool`,
    `max_pool`, `predictions`). The arguments are checked by the builder."""
    pooling = "avg" if include_top else pooling  # the classifier pools by average
    if pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(
            data_format=data_format, name="avg_pool"
        )(x)  # (batch, channels)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(data_format=data_format, name="max_pool")(x)
    if include_top:
        if dropout_rate > 0:
            x = Dropout(dropout_rate, name=dropout_name)(x)  # per replica
        x = keras.layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_initializer=kernel_initializer,
            name="predictions",
        )(x)
    return x
