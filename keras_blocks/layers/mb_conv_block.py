"""The inverted residual block of MobileNetV2 and EfficientNet, and its fused form."""

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from keras_blocks import _validation as check
from keras_blocks._initializers import for_sublayer
from keras_blocks.layers._composite_layer import CompositeLayer
from keras_blocks.layers._conv import (
    DepthwiseConv2D,
    batch_normalization,
    set_unit_options,
    strided_output_shape,
    unit_options,
    unit_options_config,
)
from keras_blocks.layers._conv_bn import conv_bn
from keras_blocks.layers._float_inputs import float_inputs
from keras_blocks.layers._padding import symmetric_padding_layer
from keras_blocks.layers.conv_bn_act import ConvBNAct
from keras_blocks.layers.drop_path import DropPath
from keras_blocks.layers.squeeze_excite import SqueezeExcite

PADDINGS = ("same", "symmetric")
# The reference EfficientNet's convolution initializer (He, by fan-out).
CONV_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"},
}


@keras.saving.register_keras_serializable(package="keras_blocks")
class MBConvBlock(CompositeLayer):
    """Mobile inverted bottleneck (MBConv), or Fused-MBConv with `fused=True`.

    MBConv: a 1x1 convolution expands the input channels by `expand_ratio`, a
    `kernel_size` depthwise convolution (with the stride) filters each channel,
    squeeze-and-excitation gates the channels, and a linear 1x1 convolution
    projects to `filters`. Every convolution is followed by batch
    normalization, and all but the projection by `activation`. When the input
    and output shapes match, the input is added back ("inverted residual"),
    with stochastic depth on the branch. Fused-MBConv replaces the expansion
    and the depthwise convolution by one `kernel_size` convolution, which runs
    faster on accelerators in the early, wide-resolution stages.

    References:
        - Sandler et al., "MobileNetV2: Inverted Residuals and Linear
          Bottlenecks", CVPR 2018.
        - Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional
          Neural Networks", ICML 2019.
        - Tan & Le, "EfficientNetV2: Smaller Models and Faster Training",
          ICML 2021 (Fused-MBConv).

    As in the reference implementation, the squeeze width is
    `max(1, int(input_channels * se_ratio))`: a fraction of the block's input
    channels, not of the expanded channels the gate sees (torchvision's
    `max(1, input_channels // 4)` for `se_ratio=0.25`). Convolutions pad
    `"same"` (TensorFlow's rule) by default, or `"symmetric"` (PyTorch's, as
    torchvision's EfficientNet), the defaults (`bn_momentum=0.99`,
    `bn_epsilon=1e-3`, fan-out He initialization) are the reference's, and the
    weights are held in the order of a `keras.applications.EfficientNetB0`
    block (expansion, depthwise, squeeze-and-excitation, projection), so its
    weights load with `set_weights` and give the same outputs.

    Args:
        filters: int. Number of output channels.
        kernel_size: int or tuple of 2 ints. Size (height, width) of the
            depthwise (or fused) convolution kernel, as `keras.layers.Conv2D`
            takes it; stored as a tuple of 2 ints.
        strides: int or tuple of 2 equal ints. Stride of the depthwise (or
            fused) convolution.
        padding: str. `"same"` (TensorFlow's rule: with a stride, the extra
            padding goes to the bottom and right) or `"symmetric"` (`k // 2`
            rows and columns on every side, as PyTorch pads; needs odd kernel
            sizes). They differ only for the strided convolution.
        expand_ratio: int. Expanded channels per input channel; with 1 there
            is no expansion convolution.
        se_ratio: float or None. Squeeze width as a fraction of the input
            channels, in (0, 1]; `None` for no squeeze-and-excitation.
        fused: bool. Fused-MBConv instead of MBConv. With `expand_ratio=1` it
            is a single `kernel_size` convolution (with squeeze-and-excitation
            before it, as in the reference).
        skip: bool. Whether to add the input back when the input and output
            shapes match (stride 1, as many input channels as `filters`).
        drop_path_rate: float. Stochastic depth rate of the branch, in
            [0, 1); used only when the block has its skip connection.
        use_bias: bool or None. Whether the expansion, depthwise and
            projection convolutions have biases; `None` gives them none, since
            batch normalization follows each of them. (The squeeze-and-
            excitation convolutions always have biases.)
        activation: str, callable or None. Activation after the expansion,
            the depthwise convolution and in the squeeze-and-excitation.
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
        kernel_initializer: str, config dict or
            `keras.initializers.Initializer`, for every convolution.
        kernel_regularizer: str, `keras.regularizers.Regularizer` or None.
        data_format: str or None. `"channels_last"` or `"channels_first"`;
            `None` uses `keras.config.image_data_format()`.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: 4D tensor.
        training: bool. Whether batch normalization uses batch statistics and
            stochastic depth drops.

    Input shape:
        4D tensor `(batch, height, width, channels)` (channels last) or
        `(batch, channels, height, width)` (channels first).

    Output shape:
        4D tensor with `filters` channels; each spatial size becomes
        `ceil(size / strides)`.

    Raises:
        ValueError: on an invalid argument, or when building on an input that
            is not 4D or has unknown channels.

    Examples:
        >>> import numpy as np
        >>> import keras_blocks
        >>> block = keras_blocks.layers.MBConvBlock(24, kernel_size=3, strides=2)
        >>> tuple(block(np.zeros((2, 16, 16, 16))).shape)
        (2, 8, 8, 24)
        >>> len(block.weights)  # expand 5, depthwise 5, se 4, project 5
        19
        >>> fused = keras_blocks.layers.MBConvBlock(16, expand_ratio=4, fused=True)
        >>> tuple(fused(np.zeros((2, 16, 16, 16))).shape)
        (2, 16, 16, 16)
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int] = 3,
        strides: int | tuple[int, int] = 1,
        padding: str = "same",
        expand_ratio: int = 6,
        se_ratio: float | None = 0.25,
        fused: bool = False,
        skip: bool = True,
        drop_path_rate: float = 0.0,
        use_bias: bool | None = None,
        activation: str | Callable | None = "swish",
        bn_momentum: float = 0.99,
        bn_epsilon: float = 1e-3,
        bn_synchronized: bool = False,
        kernel_initializer: Any = CONV_INITIALIZER,
        kernel_regularizer: Any = None,
        data_format: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.filters = check.positive_int("filters", filters)
        self.kernel_size = check.size_pair("kernel_size", kernel_size)
        self.strides = check.equal_pair(
            "strides", strides, "MBConvBlock strides height and width alike"
        )
        self.padding = check.one_of("padding", padding, PADDINGS)
        if padding == "symmetric":
            check.size_pair(
                "kernel_size", kernel_size, odd=True, note="with padding='symmetric'"
            )
        self.expand_ratio = check.positive_int("expand_ratio", expand_ratio)
        self.se_ratio = check.optional(check.fraction, "se_ratio", se_ratio)
        self.fused = check.boolean("fused", fused)
        self.skip = check.boolean("skip", skip)
        self.drop_path_rate = check.rate("drop_path_rate", drop_path_rate)
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

    def _unit(self, filters, kernel_size, strides, name, activation=True):
        options = unit_options(self, name)
        if not activation:
            options["activation"] = None
        return ConvBNAct(
            filters,
            kernel_size,
            strides=strides,
            padding=self.padding,
            **options,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        channels = check.image_channels(self, input_shape, self.data_format)
        self.input_spec = check.image_input_spec(channels, self.data_format)
        expanded = channels * self.expand_ratio
        expands = self.expand_ratio != 1
        self.has_skip = self.skip and self.strides == 1 and channels == self.filters

        # The sublayers' widths depend on the input channels, so they are
        # created here, in the order of keras.applications' weights.
        self.expand = None
        self.depthwise = self.depthwise_bn = self.depthwise_pad = None
        if self.fused and expands:
            self.expand = self._unit(expanded, self.kernel_size, self.strides, "expand")
        elif not self.fused:
            if expands:
                self.expand = self._unit(expanded, 1, 1, "expand")
            self.depthwise_pad = symmetric_padding_layer(
                self, self.kernel_size, self.strides, "depthwise_pad"
            )
            self.depthwise = DepthwiseConv2D(
                self.kernel_size,
                strides=self.strides,
                padding="same" if self.depthwise_pad is None else "valid",
                use_bias=bool(self.use_bias),
                depthwise_initializer=for_sublayer(
                    self.kernel_initializer, "depthwise"
                ),
                depthwise_regularizer=self.kernel_regularizer,
                data_format=self.data_format,
                dtype=self.dtype_policy,
                name="depthwise",
            )
            self.depthwise_bn = batch_normalization(self, "depthwise_bn")
        self.se = (
            SqueezeExcite(
                self.se_ratio,
                squeeze_channels=max(1, int(channels * self.se_ratio)),
                activation=self.activation,
                kernel_initializer=for_sublayer(self.kernel_initializer, "se"),
                kernel_regularizer=self.kernel_regularizer,
                data_format=self.data_format,
                dtype=self.dtype_policy,
                name="se",
            )
            if self.se_ratio
            else None
        )
        # A fused block without expansion is one kxk convolution, activated.
        single = self.fused and not expands
        self.project = self._unit(
            self.filters,
            self.kernel_size if single else 1,
            self.strides if single else 1,
            "project",
            activation=single,
        )
        self.drop_path = (
            DropPath(self.drop_path_rate, dtype=self.dtype_policy, name="drop_path")
            if self.has_skip and self.drop_path_rate
            else None
        )

        shape = input_shape
        if self.expand is not None:
            self.expand.build(shape)
            shape = self.expand.compute_output_shape(shape)
        if self.depthwise_pad is not None:
            self.depthwise_pad.build(shape)
            shape = self.depthwise_pad.compute_output_shape(shape)
        if self.depthwise is not None:
            self.depthwise.build(shape)
            shape = self.depthwise.compute_output_shape(shape)
            self.depthwise_bn.build(shape)
        if self.se is not None:
            self.se.build(shape)
        self.project.build(shape)

    def call(self, inputs, training=None):
        inputs = float_inputs(self, inputs)
        x = inputs
        if self.expand is not None:
            x = self.expand(x, training=training)
        if self.depthwise_pad is not None:
            x = self.depthwise_pad(x)
        if self.depthwise is not None:
            x = conv_bn(self.depthwise, self.depthwise_bn, x, training=training)
            if self.activation is not None:
                x = self.activation(x)
        if self.se is not None:
            x = self.se(x)
        x = self.project(x, training=training)
        if not self.has_skip:
            return x
        if self.drop_path is not None:
            x = self.drop_path(x, training=training)
        return ops.add(x, inputs)

    def compute_output_shape(self, input_shape):
        return strided_output_shape(
            input_shape, self.strides, self.filters, self.data_format
        )

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "expand_ratio": self.expand_ratio,
            "se_ratio": self.se_ratio,
            "fused": self.fused,
            "skip": self.skip,
            "drop_path_rate": self.drop_path_rate,
            **unit_options_config(self),
        }
