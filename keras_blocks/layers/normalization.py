"""Input normalization that `set_weights` can change."""

import numbers
from typing import Any

import keras
from keras import ops

from keras_blocks import _validation as check


@keras.saving.register_keras_serializable(package="keras_blocks")
class Normalization(keras.layers.Normalization):
    """`keras.layers.Normalization` that reads its statistics at every call.

    Keras' layer copies its mean and variance variables into constants when it
    is built, adapted or loaded from a file, so assigning the variables (which
    is what `Model.set_weights` does) silently leaves its output unchanged.
    The models built here hold the same three weights (mean, variance, count)
    in the same place as `keras.applications`' EfficientNet, and a weight
    transfer must reach them. With `mean` and `variance` given, or with
    `invert=True`, it is Keras' layer unchanged.

    Args:
        axis: int, tuple of int or None. The axis or axes that keep their own
            mean and variance (-1: the last, such as the channels of a
            `channels_last` image); `None` for one mean and variance.
        mean: float, sequence or None. Fixed mean; `None` keeps it in a
            weight (zeros until `adapt` or `set_weights`).
        variance: float, sequence or None. Fixed variance, given with `mean`.
        invert: bool. Whether to undo the normalization instead.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: tensor.

    Input shape:
        Any shape whose `axis` dimensions are known.

    Output shape:
        Same as the input.

    Raises:
        ValueError: if `axis` is not an integer, a sequence of integers or
            None, `invert` is not a boolean, or `mean` is given without
            `variance` (or the reverse).

    Examples:
        >>> import numpy as np
        >>> import keras
        >>> import keras_blocks
        >>> layer = keras_blocks.layers.Normalization(axis=-1)
        >>> layer.build((None, 2))
        >>> layer.set_weights([np.array([1.0, 2.0]), np.array([4.0, 1.0]), np.array(0)])
        >>> x = np.array([[3.0, 3.0]], dtype="float32")
        >>> keras.ops.convert_to_numpy(layer(x)).tolist()
        [[1.0, 1.0]]
    """

    def __init__(
        self,
        axis: int | tuple[int, ...] | None = -1,
        mean: Any = None,
        variance: Any = None,
        invert: bool = False,
        **kwargs: Any,
    ):
        if axis is not None and not (
            _is_int(axis)
            or (isinstance(axis, tuple | list) and all(_is_int(a) for a in axis))
        ):
            raise ValueError(
                "Invalid value for argument `axis`. Expected an integer, a "
                f"sequence of integers or None. Received: axis={axis!r}"
            )
        super().__init__(
            axis=axis,
            mean=mean,
            variance=variance,
            invert=check.boolean("invert", invert),
            **kwargs,
        )

    def call(self, inputs):
        if self.input_mean is not None or self.invert:
            return super().call(inputs)
        mean = ops.reshape(self.adapt_mean, self._broadcast_shape)
        variance = ops.reshape(self.adapt_variance, self._broadcast_shape)
        x = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        scale = ops.maximum(ops.sqrt(variance), keras.config.epsilon())
        return (x - ops.cast(mean, x.dtype)) / ops.cast(scale, x.dtype)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
