"""What the basic and bottleneck residual blocks share.

A residual block is `activation(branch(x) + shortcut(x))` (post-activation, v1)
or `branch(preact(x)) + shortcut(x)` (pre-activation, v2). The subclasses only
say what the branch is; this base class owns the shortcut, the pre-activation,
squeeze-and-excitation, stochastic depth, the addition and the configuration.
"""

import keras
from keras import ops

from keras_blocks import _validation as check
from keras_blocks._initializers import for_sublayer
from keras_blocks.layers._composite_layer import CompositeLayer
from keras_blocks.layers._conv import (
    Conv2D,
    batch_normalization,
    set_unit_options,
    unit_options,
    unit_options_config,
)
from keras_blocks.layers._conv_bn import batch_norm, conv_bn
from keras_blocks.layers._float_inputs import float_inputs
from keras_blocks.layers.conv_bn_act import ConvBNAct
from keras_blocks.layers.drop_path import DropPath
from keras_blocks.layers.squeeze_excite import SqueezeExcite

SHORTCUTS = ("auto", "identity", "projection", "zero_pad", "avg_pool")


class ResidualBase(CompositeLayer):
    """Base class of `ResidualBlock` and `BottleneckBlock`; not public."""

    def __init__(
        self,
        filters,
        strides,
        preact,
        shortcut,
        se_ratio,
        drop_path_rate,
        zero_init_last_bn,
        use_bias,
        activation,
        bn_momentum,
        bn_epsilon,
        bn_synchronized,
        kernel_initializer,
        kernel_regularizer,
        data_format,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check.positive_int("filters", filters)
        self.strides = check.equal_pair(
            "strides",
            strides,
            f"{self.__class__.__name__} strides height and width alike",
        )
        self.preact = check.boolean("preact", preact)
        self.shortcut = check.one_of("shortcut", shortcut, SHORTCUTS)
        if shortcut == "identity" and self.strides != 1:
            raise ValueError(
                "Invalid value for argument `shortcut`. An identity shortcut "
                f"needs strides=1; use 'auto', 'projection', 'zero_pad' or "
                f"'avg_pool' with strides={self.strides}. Received: "
                f"shortcut={shortcut!r}"
            )
        self.se_ratio = check.optional(check.fraction, "se_ratio", se_ratio)
        self.drop_path_rate = check.rate("drop_path_rate", drop_path_rate)
        self.zero_init_last_bn = check.boolean("zero_init_last_bn", zero_init_last_bn)
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

    # What the subclasses define.

    @property
    def output_channels(self):
        raise NotImplementedError

    def _branch_units(self, initializer=None):
        """The branch's convolution units, all but the last convolution
        (`initializer`: as `_unit`'s)."""
        raise NotImplementedError

    _last_kernel_size = None

    # Construction.

    def _unit(self, filters, kernel_size, strides, name, groups=1, initializer=None):
        """A `ConvBNAct` of the block's options; `initializer`, where given,
        replaces the block's kernel initializer (a copy of which, made for an
        unseeded one, draws a seed)."""
        if initializer is None:
            options = unit_options(self, name)
        else:  # the stored options as they are, not serialized
            options = {
                **unit_options_config(self),
                "activation": self.activation,
                "kernel_initializer": initializer,
                "kernel_regularizer": self.kernel_regularizer,
            }
        return ConvBNAct(
            filters,
            kernel_size,
            strides=strides,
            padding="symmetric",
            groups=groups,
            **options,
            dtype=self.dtype_policy,
            name=name,
        )

    def _conv(self, kernel_size, strides, name, followed_by_bn, initializer=None):
        return Conv2D(
            self.output_channels,
            kernel_size,
            strides=strides,
            padding="same",
            # A bias only where no normalization follows, unless told otherwise.
            use_bias=not followed_by_bn if self.use_bias is None else self.use_bias,
            kernel_initializer=initializer
            or for_sublayer(self.kernel_initializer, name),
            kernel_regularizer=self.kernel_regularizer,
            data_format=self.data_format,
            dtype=self.dtype_policy,
            name=name,
        )

    def _resolve_shortcut(self, channels):
        if self.shortcut != "auto":
            return self.shortcut
        if self.strides == 1 and channels == self.output_channels:
            return "identity"
        return "projection"

    def build(self, input_shape):
        channels = check.image_channels(self, input_shape, self.data_format)
        kind = self._resolve_shortcut(channels)
        if kind == "identity" and channels != self.output_channels:
            raise ValueError(
                f"Layer '{self.name}' has an identity shortcut, which needs as "
                f"many input channels as output channels ({self.output_channels}). "
                f"Received: input_shape={input_shape}"
            )
        if kind == "zero_pad" and channels > self.output_channels:
            raise ValueError(
                f"Layer '{self.name}' has a zero_pad shortcut, which can add "
                f"channels but not remove them: the input has {channels}, the "
                f"output {self.output_channels}. Received: input_shape={input_shape}"
            )
        self._shortcut_kind = kind
        self._extra_channels = self.output_channels - channels
        projects = kind in ("projection", "avg_pool")
        units = list(self._branch_units())
        last = len(units) + 1

        # The sublayers depend on the input channels (the "auto" shortcut), so
        # they are created here, in the order keras.applications' functional
        # ResNets hold their weights, so that `set_weights` transfers them:
        # pre-activation BN, branch units, shortcut conv, last conv, shortcut
        # BN, last BN, then squeeze-and-excitation.
        self.preact_bn = batch_normalization(self, "preact_bn") if self.preact else None
        # Each unit is an attribute of its own (conv1, conv2): TensorFlow's
        # object graph, which `tf.train.Checkpoint` and SavedModel follow,
        # does not reach layers kept in a Python list.
        for unit in units:
            setattr(self, unit.name, unit)
        self._branch_names = tuple(unit.name for unit in units)
        self.shortcut_pool = (
            keras.layers.AveragePooling2D(
                self.strides,
                strides=self.strides,
                padding="same",
                data_format=self.data_format,
                dtype=self.dtype_policy,
                name="shortcut_pool",
            )
            if kind == "avg_pool" and self.strides > 1
            else None
        )
        self.shortcut_conv = (
            self._conv(
                1,
                self.strides if kind == "projection" else 1,
                "shortcut_conv",
                followed_by_bn=not self.preact,
            )
            if projects
            else None
        )
        zero_last = self.zero_init_last_bn and self.preact
        self.last_conv = self._conv(
            self._last_kernel_size,
            1,
            f"conv{last}",
            followed_by_bn=not self.preact,
            # Pre-activation blocks have no last BN: zero the last conv instead.
            initializer="zeros" if zero_last else None,
        )
        self.shortcut_bn = (
            batch_normalization(self, "shortcut_bn")
            if projects and not self.preact
            else None
        )
        self.last_bn = (
            None
            if self.preact
            else batch_normalization(
                self, f"bn{last}", "zeros" if self.zero_init_last_bn else "ones"
            )
        )
        self.se = (
            SqueezeExcite(
                self.se_ratio,
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
        self.drop_path = (
            DropPath(self.drop_path_rate, dtype=self.dtype_policy, name="drop_path")
            if self.drop_path_rate
            else None
        )

        if self.preact_bn is not None:
            self.preact_bn.build(input_shape)
        shape = input_shape
        for unit in self.branch:
            unit.build(shape)
            shape = unit.compute_output_shape(shape)
        self.last_conv.build(shape)
        output_shape = self.last_conv.compute_output_shape(shape)
        for layer in (self.last_bn, self.se, self.shortcut_bn):
            if layer is not None:
                layer.build(output_shape)
        if self.shortcut_conv is not None:
            pooled = input_shape
            if self.shortcut_pool is not None:
                pooled = self.shortcut_pool.compute_output_shape(input_shape)
            self.shortcut_conv.build(pooled)
        self.input_spec = check.image_input_spec(channels, self.data_format)

    @property
    def branch(self):
        """The branch's convolution units before the last convolution."""
        return tuple(getattr(self, name) for name in self._branch_names)

    # Computation.

    def call(self, inputs, training=None):
        inputs = float_inputs(self, inputs)
        x = inputs
        if self.preact:
            x = batch_norm(self.preact_bn, inputs, training=training)
            x = self.activation(x) if self.activation is not None else x
        shortcut = self._apply_shortcut(inputs, x, training)
        for unit in self.branch:
            x = unit(x, training=training)
        if self.last_bn is None:
            x = self.last_conv(x)
        else:
            x = conv_bn(self.last_conv, self.last_bn, x, training=training)
        if self.se is not None:
            x = self.se(x)
        if self.drop_path is not None:
            x = self.drop_path(x, training=training)
        x = ops.add(x, shortcut)
        if not self.preact and self.activation is not None:
            x = self.activation(x)
        return x

    def _apply_shortcut(self, inputs, preactivated, training):
        kind = self._shortcut_kind
        if kind == "identity":
            return inputs
        if kind == "zero_pad":
            # Option A of the ResNet paper: subsample, then append zero channels.
            s = self.strides
            if self.data_format == "channels_last":
                x = inputs[:, ::s, ::s, :]
                padding = [(0, 0), (0, 0), (0, 0), (0, self._extra_channels)]
            else:
                x = inputs[:, :, ::s, ::s]
                padding = [(0, 0), (0, self._extra_channels), (0, 0), (0, 0)]
            return ops.pad(x, padding) if self._extra_channels else x
        # Projections see the pre-activated input, as in the v2 paper.
        x = preactivated
        if self.shortcut_pool is not None:
            x = self.shortcut_pool(x)
        if self.shortcut_bn is None:
            return self.shortcut_conv(x)
        return conv_bn(self.shortcut_conv, self.shortcut_bn, x, training=training)

    def compute_output_shape(self, input_shape):
        # The branch's own layers say it (the shortcut matches it, or the
        # addition would fail): its units, then the last convolution.
        shape = tuple(input_shape)
        for layer in self._branch_layers():
            shape = layer.compute_output_shape(shape)
        return shape

    def _branch_layers(self):
        """The branch's units and last convolution: the block's own once
        built; before (`build` makes them, as the shortcut depends on the
        input's channels), ones of the same configuration made for the
        question, with kernels initialized to zeros so that making them
        draws no seed: asking for a shape leaves the weights the block will
        draw as they were."""
        if getattr(self, "_branch_names", None) is not None:
            return (*self.branch, self.last_conv)
        return (
            *self._branch_units("zeros"),
            self._conv(
                self._last_kernel_size,
                1,
                "last",
                followed_by_bn=True,
                initializer="zeros",
            ),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "strides": self.strides,
            "preact": self.preact,
            "shortcut": self.shortcut,
            "se_ratio": self.se_ratio,
            "drop_path_rate": self.drop_path_rate,
            "zero_init_last_bn": self.zero_init_last_bn,
            **unit_options_config(self),
        }
