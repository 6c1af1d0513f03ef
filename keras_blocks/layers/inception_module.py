"""GoogLeNet's Inception module (Inception v1)."""

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from keras_blocks import _validation as check
from keras_blocks.layers._composite_layer import CompositeLayer
from keras_blocks.layers._conv import (
    set_unit_options,
    unit_options,
    unit_options_config,
)
from keras_blocks.layers._float_inputs import float_inputs
from keras_blocks.layers.conv_bn_act import ConvBNAct


@keras.saving.register_keras_serializable(package="keras_blocks")
class InceptionModule(CompositeLayer):
    """Inception module: four parallel branches concatenated on channels.

    Branches: a 1x1 convolution; a 1x1 reduction then a 3x3 convolution; a 1x1
    reduction then a 5x5 convolution; 3x3 max pooling (stride 1) then a 1x1
    projection. Every convolution is a `ConvBNAct` (convolution, BN, ReLU;
    `batch_norm=False` gives the 2014 paper's convolution with bias and ReLU).
    The spatial size is kept. `kernel_size_5x5=3` gives torchvision's
    GoogLeNet module, whose "5x5" branch has a 3x3 convolution (a slip it
    keeps for its published weights).

    `naive=True` is the paper's naive module (its figure 2a): a 1x1, a 3x3
    and a 5x5 convolution and 3x3 max pooling, with no reductions; the pooled
    input passes through unchanged, so the channels grow by the input's.

    Reference: Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.

    Weights, in this order: `branch1x1`, `branch3x3_reduce`, `branch3x3`,
    `branch5x5_reduce`, `branch5x5`, `branch_pool_proj` (the reductions and
    projection only in the default module), each a `ConvBNAct`.

    Args:
        filters_1x1: int. Filters of the 1x1 branch ("#1x1" in the paper).
        filters_3x3_reduce: int or None. Filters of the 1x1 reduction before
            the 3x3 ("#3x3 reduce"): a strictly positive int, or None when
            (and only when) `naive=True`.
        filters_3x3: int. Filters of the 3x3 convolution ("#3x3").
        filters_5x5_reduce: int or None. Filters of the 1x1 reduction before
            the 5x5 ("#5x5 reduce"): a strictly positive int, or None when
            (and only when) `naive=True`.
        filters_5x5: int. Filters of the 5x5 convolution ("#5x5").
        filters_pool_proj: int or None. Filters of the 1x1 projection after
            pooling ("pool proj"): a strictly positive int, or None when (and
            only when) `naive=True`.
        naive: bool. Build the naive module without 1x1 reductions.
        batch_norm: bool. BN after every convolution.
        use_bias: bool or None. Convolution biases; `None` gives them only
            when `batch_norm=False`.
        activation: str or callable. Activation after every convolution.
        bn_momentum: float. Momentum of the BN moving statistics.
        bn_epsilon: float. BN epsilon (torchvision's GoogLeNet uses `1e-3`).
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
        kernel_size_5x5: int or tuple of 2 ints. Kernel size (height, width)
            of the "5x5" branch's convolution (3 in torchvision's GoogLeNet):
            odd, so that the stride-1 convolution pads its input equally on
            both sides and keeps its size, as the other branches do. Stored as
            a tuple, as `keras.layers.Conv2D` stores its kernel size. Last in
            the signature, so that positional arguments keep their places.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: 4D tensor.
        training: bool. Whether BN uses batch statistics.

    Input shape:
        4D tensor `(batch, height, width, channels)` (channels last) or
        `(batch, channels, height, width)` (channels first).

    Output shape:
        Same spatial size, with `filters_1x1 + filters_3x3 + filters_5x5 +
        filters_pool_proj` channels (`+ channels` in place of the last term
        when `naive=True`).

    Raises:
        ValueError: on an invalid argument (including a reduction or
            projection given with `naive=True`, or missing without it, and an
            even `kernel_size_5x5`), or
            when building on an input that is not 4D or has unknown channels.

    Examples:
        >>> import numpy as np
        >>> import keras_blocks
        >>> inception_3a = keras_blocks.layers.InceptionModule(64, 96, 128, 16, 32, 32)
        >>> tuple(inception_3a(np.zeros((1, 28, 28, 192))).shape)
        (1, 28, 28, 256)
        >>> naive = keras_blocks.layers.InceptionModule(
        ...     64, None, 128, None, 32, None, naive=True
        ... )
        >>> tuple(naive(np.zeros((1, 28, 28, 192))).shape)
        (1, 28, 28, 416)
        >>> torchvision_3a = keras_blocks.layers.InceptionModule(
        ...     64, 96, 128, 16, 32, 32, kernel_size_5x5=3, bn_epsilon=1e-3
        ... )
        >>> torchvision_3a.build((1, 28, 28, 192))
        >>> tuple(torchvision_3a.branch5x5.conv.kernel.shape)
        (3, 3, 16, 32)
    """

    def __init__(
        self,
        filters_1x1: int,
        filters_3x3_reduce: int | None,
        filters_3x3: int,
        filters_5x5_reduce: int | None,
        filters_5x5: int,
        filters_pool_proj: int | None,
        naive: bool = False,
        batch_norm: bool = True,
        use_bias: bool | None = None,
        activation: str | Callable = "relu",
        bn_momentum: float = 0.9,
        bn_epsilon: float = 1e-5,
        bn_synchronized: bool = False,
        kernel_initializer: Any = "he_normal",
        kernel_regularizer: Any = None,
        data_format: str | None = None,
        kernel_size_5x5: int | tuple[int, int] = 5,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.naive = check.boolean("naive", naive)
        self.filters_1x1 = check.positive_int("filters_1x1", filters_1x1)
        self.filters_3x3 = check.positive_int("filters_3x3", filters_3x3)
        self.filters_5x5 = check.positive_int("filters_5x5", filters_5x5)
        self.kernel_size_5x5 = check.size_pair(
            "kernel_size_5x5", kernel_size_5x5, odd=True
        )
        self.filters_3x3_reduce = self._reduction(
            "filters_3x3_reduce", filters_3x3_reduce
        )
        self.filters_5x5_reduce = self._reduction(
            "filters_5x5_reduce", filters_5x5_reduce
        )
        self.filters_pool_proj = self._reduction("filters_pool_proj", filters_pool_proj)
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

        def unit(filters, kernel_size, name):
            if filters is None:
                return None
            return ConvBNAct(
                filters,
                kernel_size,
                batch_norm=self.batch_norm,
                **unit_options(self, name),
                dtype=self.dtype_policy,
                name=name,
            )

        self.branch1x1 = unit(self.filters_1x1, 1, "branch1x1")
        self.branch3x3_reduce = unit(self.filters_3x3_reduce, 1, "branch3x3_reduce")
        self.branch3x3 = unit(self.filters_3x3, 3, "branch3x3")
        self.branch5x5_reduce = unit(self.filters_5x5_reduce, 1, "branch5x5_reduce")
        self.branch5x5 = unit(self.filters_5x5, self.kernel_size_5x5, "branch5x5")
        self.pool = keras.layers.MaxPooling2D(
            3,
            strides=1,
            padding="same",
            data_format=self.data_format,
            dtype=self.dtype_policy,
            name="pool",
        )
        self.branch_pool_proj = unit(self.filters_pool_proj, 1, "branch_pool_proj")

    def _reduction(self, name, value):
        if not self.naive:  # the signature allows None: say where
            return check.positive_int(name, value, note="None only with naive=True")
        if value is not None:
            raise ValueError(
                f"Invalid value for argument `{name}`. The naive module has no "
                "1x1 reductions or projection: expected None with naive=True. "
                f"Received: {name}={value!r}"
            )
        return None

    def _branches(self):
        """Each branch as its sequence of layers (None entries skipped)."""
        return [
            [self.branch1x1],
            [self.branch3x3_reduce, self.branch3x3],
            [self.branch5x5_reduce, self.branch5x5],
            [self.pool, self.branch_pool_proj],
        ]

    def build(self, input_shape):
        channels = check.image_channels(self, input_shape, self.data_format)
        for branch in self._branches():
            self._through(branch, input_shape, build=True)
        self.input_spec = check.image_input_spec(channels, self.data_format)

    @staticmethod
    def _through(branch, shape, build=False):
        """The output shape of `branch` from each layer's own
        `compute_output_shape`; `build=True` builds each with its input's."""
        for layer in branch:
            if layer is not None:
                if build:
                    layer.build(shape)
                shape = layer.compute_output_shape(shape)
        return shape

    def call(self, inputs, training=None):
        inputs = float_inputs(self, inputs)
        outputs = []
        for branch in self._branches():
            x = inputs
            for layer in branch:
                if layer is not None:
                    x = layer(x, training=training)
            outputs.append(x)
        return ops.concatenate(outputs, axis=check.channel_axis(self.data_format))

    def compute_output_shape(self, input_shape):
        # Each branch's shape from its own layers; their channels side by side.
        axis = check.channel_axis(self.data_format)
        shapes = [
            self._through(branch, tuple(input_shape)) for branch in self._branches()
        ]
        channels = [shape[axis] for shape in shapes]
        output_shape = list(shapes[0])
        output_shape[axis] = None if None in channels else sum(channels)
        return tuple(output_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "filters_1x1": self.filters_1x1,
            "filters_3x3_reduce": self.filters_3x3_reduce,
            "filters_3x3": self.filters_3x3,
            "filters_5x5_reduce": self.filters_5x5_reduce,
            "filters_5x5": self.filters_5x5,
            "filters_pool_proj": self.filters_pool_proj,
            "kernel_size_5x5": self.kernel_size_5x5,
            "naive": self.naive,
            "batch_norm": self.batch_norm,
            **unit_options_config(self),
        }
