"""Convolution, batch normalization, activation: the unit every block is made of."""

from collections.abc import Callable
from typing import Any

import keras

from keras_blocks import _validation as check
from keras_blocks.layers._composite_layer import CompositeLayer
from keras_blocks.layers._conv import (
    Conv2D,
    batch_normalization,
    image_shape,
    set_unit_options,
    spatial_shape,
    strided_size,
    unit_options_config,
)
from keras_blocks.layers._conv_bn import conv_bn
from keras_blocks.layers._float_inputs import float_inputs
from keras_blocks.layers._padding import symmetric_padding_layer

PADDINGS = ("same", "valid", "symmetric")


@keras.saving.register_keras_serializable(package="keras_blocks")
class ConvBNAct(CompositeLayer):
    """2D convolution, then batch normalization, then an activation.

    The unit the ResNet, Inception and EfficientNet papers draw as one box
    ("conv-BN-ReLU"), with the choices those papers and their reference code
    make: a bias only where no normalization follows, He initialization, and
    PyTorch-style symmetric padding for strided convolutions.

    Reference: Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network
    Training by Reducing Internal Covariate Shift", ICML 2015.

    Weights, in this order: the convolution's kernel (and bias), then the batch
    normalization's gamma, beta, moving mean and moving variance. This is the
    order of a `Conv2D` followed by a `BatchNormalization` in a functional model.

    The same results as those two layers, computed in fewer passes (as in
    every block): at inference the normalization is folded into the
    convolution (its kernel scaled per output channel, one bias), from the
    current weights at each call; in training it normalizes with the batch's
    statistics in one multiply-add (one fused `batch_norm` on PyTorch) and
    updates the moving statistics as Keras does. Nothing but the weights is
    stored, so `set_weights`, `.keras` files and keras.applications'
    weights behave as for the two layers.

    Args:
        filters: int. Number of output channels.
        kernel_size: int or tuple of 2 ints. Height and width of the kernel
            (one int for a square kernel), as `keras.layers.Conv2D` takes it;
            stored as a tuple of 2 ints, as Conv2D stores it.
        strides: int or tuple of 2 equal ints. Stride in both spatial
            dimensions (an equal pair, as `keras.layers.Conv2D` takes it).
        padding: str. `"same"` (TensorFlow's rule, extra padding at the bottom
            and right), `"valid"` (none) or `"symmetric"` (`kh // 2` rows at
            the top and bottom, `kw // 2` columns left and right for a
            `(kh, kw)` kernel: PyTorch's rule; needs odd kernel sizes). With a
            stride of 1 and an odd kernel, `"same"` and `"symmetric"` agree.
        groups: int. Number of channel groups (grouped convolution, ResNeXt).
            Must divide `filters` and the input channels.
        use_bias: bool or None. Whether the convolution has a bias. `None`
            gives it one only when `batch_norm=False`, since the normalization
            cancels a bias.
        batch_norm: bool. Whether to apply batch normalization.
        activation: str, callable or None. Activation after normalization;
            `None` for none.
        bn_momentum: float. Momentum of the moving statistics.
        bn_epsilon: float. Small constant added to the variance.
        bn_synchronized: bool. Whether batch normalization computes its batch
            statistics over all replicas of a distribution strategy rather
            than each replica's share of the batch (TensorFlow's
            `BatchNormalization(synchronized=True)`). Elsewhere it is stored
            and changes nothing: under `keras.distribution` on JAX the
            statistics are already those of the global batch, and on PyTorch
            DDP `keras_blocks.distribute.synchronize_batch_statistics` averages
            the moving statistics over the processes.
        kernel_initializer: str or `keras.initializers.Initializer`.
        kernel_regularizer: str, `keras.regularizers.Regularizer` or None.
        data_format: str or None. `"channels_last"` or `"channels_first"`;
            `None` uses `keras.config.image_data_format()`.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: 4D tensor.
        training: bool. Whether batch normalization uses batch statistics.

    Input shape:
        4D tensor `(batch, height, width, channels)` (channels last) or
        `(batch, channels, height, width)` (channels first).

    Output shape:
        4D tensor with `filters` channels; each spatial size becomes
        `ceil(size / strides)` for `"same"` and `"symmetric"` padding, and
        `floor((size - k) / strides) + 1` for `"valid"`, with `k` the
        kernel's size in that dimension.

    Raises:
        ValueError: on an invalid argument, or when building on an input that
            is not 4D, has unknown channels, has channels not divisible by
            `groups`, or is smaller than the kernel with `"valid"` padding.

    Examples:
        >>> import numpy as np
        >>> import keras_blocks
        >>> unit = keras_blocks.layers.ConvBNAct(32, kernel_size=3, strides=2)
        >>> tuple(unit(np.zeros((2, 17, 17, 3))).shape)
        (2, 9, 9, 32)
        >>> [w.path.split("/", 1)[1] for w in unit.weights]
        ['conv/kernel', 'bn/gamma', 'bn/beta', 'bn/moving_mean', 'bn/moving_variance']
        >>> row = keras_blocks.layers.ConvBNAct(8, (1, 3), padding="valid")
        >>> tuple(row(np.zeros((2, 5, 5, 3))).shape), row.kernel_size
        ((2, 5, 3, 8), (1, 3))
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int] = 3,
        strides: int | tuple[int, int] = 1,
        padding: str = "same",
        groups: int = 1,
        use_bias: bool | None = None,
        batch_norm: bool = True,
        activation: str | Callable | None = "relu",
        bn_momentum: float = 0.9,
        bn_epsilon: float = 1e-5,
        bn_synchronized: bool = False,
        kernel_initializer: Any = "he_normal",
        kernel_regularizer: Any = None,
        data_format: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.filters = check.positive_int("filters", filters)
        self.kernel_size = check.size_pair("kernel_size", kernel_size)
        self.strides = check.equal_pair(
            "strides", strides, "ConvBNAct strides height and width alike"
        )
        self.padding = check.one_of("padding", padding, PADDINGS)
        if padding == "symmetric":
            check.size_pair(
                "kernel_size", kernel_size, odd=True, note="with padding='symmetric'"
            )
        self.groups = check.positive_int("groups", groups)
        if self.filters % self.groups:
            raise ValueError(
                "Invalid value for argument `groups`. Expected a divisor of "
                f"`filters` ({self.filters}). Received: groups={groups!r}"
            )
        self.batch_norm = check.boolean("batch_norm", batch_norm)
        set_unit_options(
            self,
            use_bias=use_bias,
            activation=activation,
            bn_momentum=bn_momentum,
            bn_epsilon=bn_epsilon,
            bn_synchronized=bn_synchronized,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            data_format=data_format,
        )

        self.pad = symmetric_padding_layer(self, self.kernel_size, self.strides, "pad")
        self.conv = Conv2D(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding="valid" if self.pad is not None or padding == "valid" else "same",
            groups=self.groups,
            use_bias=not self.batch_norm if use_bias is None else use_bias,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            data_format=self.data_format,
            dtype=self.dtype_policy,
            name="conv",
        )
        self.bn = batch_normalization(self, "bn") if self.batch_norm else None

    def build(self, input_shape):
        channels = check.image_channels(self, input_shape, self.data_format)
        self.input_spec = check.image_input_spec(channels, self.data_format)
        if channels % self.groups:
            raise ValueError(
                f"Layer '{self.name}' has groups={self.groups}, which must "
                f"divide the input channels. Received: input_shape={input_shape}"
            )
        sizes = zip(
            spatial_shape(input_shape, self.data_format), self.kernel_size, strict=True
        )
        if self.padding == "valid" and any(s is not None and s < k for s, k in sizes):
            height, width = self.kernel_size
            raise ValueError(
                f"Layer '{self.name}' with padding='valid' needs inputs at least "
                f"{height} high and {width} wide (kernel_size={self.kernel_size}). "
                f"Received: input_shape={input_shape}"
            )
        shape = input_shape
        if self.pad is not None:
            self.pad.build(shape)
            shape = self.pad.compute_output_shape(shape)
        self.conv.build(shape)
        if self.bn is not None:
            self.bn.build(self.conv.compute_output_shape(shape))

    def call(self, inputs, training=None):
        inputs = float_inputs(self, inputs)
        x = inputs if self.pad is None else self.pad(inputs)
        if self.bn is None:
            x = self.conv(x)
        else:
            x = conv_bn(self.conv, self.bn, x, training=training)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def compute_output_shape(self, input_shape):
        height, width = spatial_shape(input_shape, self.data_format)
        if self.padding == "valid":
            height, width = (
                None if size is None else (size - kernel) // self.strides + 1
                for size, kernel in zip((height, width), self.kernel_size, strict=True)
            )
        else:
            height = strided_size(height, self.strides)
            width = strided_size(width, self.strides)
        return image_shape(
            input_shape[0], height, width, self.filters, self.data_format
        )

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "groups": self.groups,
            "batch_norm": self.batch_norm,
            **unit_options_config(self),
        }
