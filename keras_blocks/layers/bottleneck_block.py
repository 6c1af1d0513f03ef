"""The bottleneck residual block of ResNet-50/101/152 and ResNeXt."""

from collections.abc import Callable
from typing import Any

import keras

from keras_blocks import _validation as check
from keras_blocks.layers._residual import ResidualBase


@keras.saving.register_keras_serializable(package="keras_blocks")
class BottleneckBlock(ResidualBase):
    """Bottleneck residual block: 1x1 reduce, 3x3, 1x1 expand, and a shortcut.

    The branch is `conv1x1 -> conv3x3 -> conv1x1`, each followed by BN and
    ReLU in a post-activation (v1) block, with BN and ReLU before the first in
    a pre-activation (v2) block. The inner width is
    `int(filters * base_width / 64) * groups` and the output has
    `filters * expansion` channels. With `groups > 1` the 3x3 convolution is
    grouped: ResNeXt-50 (32x4d) is `groups=32, base_width=4`; Wide ResNet-50-2
    is `base_width=128`.

    The stride is in the 3x3 convolution by default (ResNet "v1.5", as in
    torchvision, timm and `keras.applications`' ResNet v2); `stride_in_1x1=True`
    puts it in the first 1x1 convolution, as the original paper, Caffe and
    `keras.applications`' ResNet50/101/152 (v1) do. Strided convolutions pad
    symmetrically (PyTorch's rule, also `keras.applications`' ResNet v2's).

    References:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
        He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016.
        Xie et al., "Aggregated Residual Transformations for Deep Neural
        Networks", CVPR 2017 (ResNeXt).
        He et al., "Bag of Tricks for Image Classification with Convolutional
        Neural Networks", CVPR 2019 (the `"avg_pool"` shortcut, ResNet-D).

    Shortcuts (`shortcut=`):
        - `"auto"`: identity when the shapes match, otherwise `"projection"`.
        - `"identity"`: the input itself; needs `strides=1` and
          `filters * expansion` input channels.
        - `"projection"`: strided 1x1 convolution + BN (option B/C). In a
          pre-activation block it sees the pre-activated input and has no BN.
        - `"zero_pad"`: option A of the ResNet paper: strided subsampling, then
          zero channels appended; no parameters. Cannot remove channels. With
          as many channels in as out it is plain subsampling, the shortcut of
          `keras.applications`' ResNet v2 at the end of a stage.
        - `"avg_pool"`: ResNet-D: `strides` x `strides` average pooling, then
          a 1x1 convolution + BN; as with `"projection"`, no BN in a
          pre-activation block.

    Weights, in this order (each present only when the configuration has it):
    `preact_bn`, `conv1` (kernel, BN), `conv2` (kernel, BN), `shortcut_conv`,
    `conv3`, `shortcut_bn`, `bn3`, `se` (reduce, expand). This is the order in
    which `keras.applications`' functional ResNet50 and ResNet50V2 hold a
    block's weights, so their weights load with `set_weights`.

    Args:
        filters: int. Bottleneck filters; the output has
            `filters * expansion` channels.
        strides: int or tuple of 2 equal ints. Spatial stride of the block,
            the same along height and width (as `keras.layers.Conv2D` takes
            it; stored as the int).
        expansion: int. Ratio of output channels to `filters` (4 in ResNet).
        groups: int. Cardinality of the grouped 3x3 convolution (ResNeXt).
        base_width: int. Width per group relative to 64; the inner width is
            `int(filters * base_width / 64) * groups`.
        stride_in_1x1: bool. Put the stride in the first 1x1 convolution
            (original ResNet) instead of the 3x3 (v1.5).
        preact: bool. Pre-activation (v2) instead of post-activation (v1).
        shortcut: str. One of `"auto"`, `"identity"`, `"projection"`,
            `"zero_pad"`, `"avg_pool"` (see above).
        se_ratio: float or None. If set, a `SqueezeExcite` with this ratio on
            the residual branch before the addition (SE-ResNet uses `1/16`).
        drop_path_rate: float. Stochastic depth rate of the residual branch.
        zero_init_last_bn: bool. Initialize the last BN's gamma to zero, so the
            block starts as its shortcut (Goyal et al., 2017). Pre-activation
            blocks have no last BN; their last convolution's kernel is zeroed.
        use_bias: bool or None. Whether the convolutions have biases. `None`
            gives a bias only to convolutions not followed by BN (in a
            pre-activation block: the last convolution and the projection, as
            `keras.applications`' ResNet v2 has). `True` gives every
            convolution one, as `keras.applications`' ResNet v1 does.
        activation: str or callable. Activation of the block (ReLU).
        bn_momentum: float. Momentum of the BN moving statistics.
        bn_epsilon: float. BN epsilon (`keras.applications` uses `1.001e-5`).
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
        training: bool. Batch statistics and stochastic depth when True.

    Input shape:
        4D tensor `(batch, height, width, channels)` (channels last) or
        `(batch, channels, height, width)` (channels first).

    Output shape:
        4D tensor with `filters * expansion` channels and spatial sizes
        `ceil(size / strides)`.

    Raises:
        ValueError: on an invalid argument, or when building on an input that
            is not 4D, has unknown channels, or does not fit the shortcut
            (`"identity"` with other channels, `"zero_pad"` with more).

    Examples:
        >>> import numpy as np
        >>> import keras_blocks
        >>> block = keras_blocks.layers.BottleneckBlock(64, strides=2)
        >>> tuple(block(np.zeros((2, 56, 56, 256))).shape)
        (2, 28, 28, 256)
        >>> resnext = keras_blocks.layers.BottleneckBlock(
        ...     64, groups=32, base_width=4
        ... )
        >>> resnext.build((None, 56, 56, 256))
        >>> resnext.count_params()
        72192
    """

    _last_kernel_size = 1

    def __init__(
        self,
        filters: int,
        strides: int | tuple[int, int] = 1,
        expansion: int = 4,
        groups: int = 1,
        base_width: int = 64,
        stride_in_1x1: bool = False,
        preact: bool = False,
        shortcut: str = "auto",
        se_ratio: float | None = None,
        drop_path_rate: float = 0.0,
        zero_init_last_bn: bool = False,
        use_bias: bool | None = None,
        activation: str | Callable = "relu",
        bn_momentum: float = 0.9,
        bn_epsilon: float = 1e-5,
        bn_synchronized: bool = False,
        kernel_initializer: Any = "he_normal",
        kernel_regularizer: Any = None,
        data_format: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            filters=filters,
            strides=strides,
            preact=preact,
            shortcut=shortcut,
            se_ratio=se_ratio,
            drop_path_rate=drop_path_rate,
            zero_init_last_bn=zero_init_last_bn,
            use_bias=use_bias,
            activation=activation,
            bn_momentum=bn_momentum,
            bn_epsilon=bn_epsilon,
            bn_synchronized=bn_synchronized,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            data_format=data_format,
            **kwargs,
        )
        self.expansion = check.positive_int("expansion", expansion)
        self.groups = check.positive_int("groups", groups)
        self.base_width = check.positive_int("base_width", base_width)
        self.stride_in_1x1 = check.boolean("stride_in_1x1", stride_in_1x1)
        if self.width == 0:
            raise ValueError(
                "Invalid value for argument `base_width`. Expected a value that "
                "gives at least one channel per group: int(filters * base_width "
                f"/ 64) = 0 with filters={self.filters}. "
                f"Received: base_width={base_width!r}"
            )

    @property
    def width(self):
        """Channels of the 3x3 convolution."""
        return int(self.filters * self.base_width / 64) * self.groups

    @property
    def output_channels(self):
        return self.filters * self.expansion

    def _branch_units(self, initializer=None):
        stride_1x1 = self.strides if self.stride_in_1x1 else 1
        stride_3x3 = 1 if self.stride_in_1x1 else self.strides
        return [
            self._unit(self.width, 1, stride_1x1, "conv1", initializer=initializer),
            self._unit(
                self.width,
                3,
                stride_3x3,
                "conv2",
                groups=self.groups,
                initializer=initializer,
            ),
        ]

    def get_config(self):
        return {
            **super().get_config(),
            "expansion": self.expansion,
            "groups": self.groups,
            "base_width": self.base_width,
            "stride_in_1x1": self.stride_in_1x1,
        }
