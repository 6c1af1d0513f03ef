"""Squeeze-and-Excitation: channel attention from global context."""

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from keras_blocks import _validation as check
from keras_blocks._initializers import for_sublayer
from keras_blocks.layers._composite_layer import CompositeLayer
from keras_blocks.layers._conv import Conv2D
from keras_blocks.layers._float_inputs import float_inputs


@keras.saving.register_keras_serializable(package="keras_blocks")
class SqueezeExcite(CompositeLayer):
    """Squeeze-and-Excitation block: rescales each channel by a learned gate.

    Squeeze: global average pooling to one value per channel. Excite: a 1x1
    convolution down to `squeeze_channels`, `activation`, a 1x1 convolution
    back up to the input channels and `gate_activation` (a sigmoid). The input
    is multiplied by the resulting per-channel gate.

    Reference: Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018.

    The 1x1 convolutions (with biases) hold the same weights as the paper's
    fully connected layers and have the shapes `keras.applications`'
    EfficientNet uses. Weights, in this order: reduce kernel, reduce bias,
    expand kernel, expand bias.

    Args:
        ratio: float. Squeeze width as a fraction of the input channels, in
            (0, 1]; the width is `max(1, int(channels * ratio))`. The paper's
            reduction `r = 16` is `ratio=1/16`.
        squeeze_channels: int or None. Explicit squeeze width; when given, it
            is used instead of `ratio` (EfficientNet derives it from a block's
            input channels, not from the channels the SE block sees).
        activation: str or callable. Activation after the reduction.
        gate_activation: str or callable. Activation producing the gate.
        kernel_initializer: str or `keras.initializers.Initializer`.
        kernel_regularizer: str, `keras.regularizers.Regularizer` or None.
        data_format: str or None. `"channels_last"` or `"channels_first"`;
            `None` uses `keras.config.image_data_format()`.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: 4D tensor.

    Input shape:
        4D tensor `(batch, height, width, channels)` (channels last) or
        `(batch, channels, height, width)` (channels first).

    Output shape:
        Same as the input.

    Raises:
        ValueError: on an invalid argument, or when building on an input that
            is not 4D or has unknown channels.

    Examples:
        >>> import numpy as np
        >>> import keras_blocks
        >>> se = keras_blocks.layers.SqueezeExcite(ratio=1 / 16)
        >>> tuple(se(np.ones((2, 7, 7, 64))).shape)
        (2, 7, 7, 64)
        >>> [tuple(w.shape) for w in se.weights]
        [(1, 1, 64, 4), (4,), (1, 1, 4, 64), (64,)]
    """

    def __init__(
        self,
        ratio: float = 0.25,
        squeeze_channels: int | None = None,
        activation: str | Callable = "relu",
        gate_activation: str | Callable = "sigmoid",
        kernel_initializer: Any = "he_normal",
        kernel_regularizer: Any = None,
        data_format: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.ratio = check.fraction("ratio", ratio)
        self.squeeze_channels = check.optional(
            check.positive_int, "squeeze_channels", squeeze_channels
        )
        self.activation = check.activation("activation", activation)
        self.gate_activation = check.activation("gate_activation", gate_activation)
        self.kernel_initializer = check.initializer(
            "kernel_initializer", kernel_initializer
        )
        self.kernel_regularizer = check.regularizer(
            "kernel_regularizer", kernel_regularizer
        )
        self.data_format = check.data_format(data_format)

    def build(self, input_shape):
        channels = check.image_channels(self, input_shape, self.data_format)
        squeeze = self.squeeze_channels or max(1, int(channels * self.ratio))
        # The widths depend on the input channels, so the convolutions are
        # created here rather than in __init__.
        self.reduce = self._conv(squeeze, self.activation, "reduce")
        self.expand = self._conv(channels, self.gate_activation, "expand")
        pooled = list(input_shape)
        for axis in self._spatial_axes:
            pooled[axis] = 1
        self.reduce.build(tuple(pooled))
        self.expand.build(self.reduce.compute_output_shape(tuple(pooled)))
        self.input_spec = check.image_input_spec(channels, self.data_format)

    def _conv(self, filters, activation, name):
        return Conv2D(
            filters,
            1,
            activation=activation,
            kernel_initializer=for_sublayer(self.kernel_initializer, name),
            kernel_regularizer=self.kernel_regularizer,
            data_format=self.data_format,
            dtype=self.dtype_policy,
            name=name,
        )

    @property
    def _spatial_axes(self):
        return (1, 2) if self.data_format == "channels_last" else (2, 3)

    def call(self, inputs):
        inputs = float_inputs(self, inputs)
        squeezed = ops.mean(inputs, axis=self._spatial_axes, keepdims=True)
        gate = self.expand(self.reduce(squeezed))  # (batch, 1, 1, c) or (b, c, 1, 1)
        return inputs * gate

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "ratio": self.ratio,
            "squeeze_channels": self.squeeze_channels,
            "activation": check.serialize_activation(self.activation),
            "gate_activation": check.serialize_activation(self.gate_activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "data_format": self.data_format,
        }
