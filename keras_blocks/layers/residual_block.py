"""The basic residual block of ResNet-18/34 and the CIFAR ResNets."""

from collections.abc import Callable
from typing import Any

import keras

from keras_blocks.layers._residual import ResidualBase


@keras.saving.register_keras_serializable(package="keras_blocks")
class ResidualBlock(ResidualBase):
    """Basic residual block: two 3x3 convolutions and a shortcut.

    Post-activation (v1, `preact=False`):
    `relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))`.
    Pre-activation (v2, `preact=True`):
    `conv3x3(relu(bn(conv3x3(relu(bn(x)))))) + shortcut(x)`.
    The stride, if any, is in the first convolution. Strided convolutions pad
    symmetrically (PyTorch's rule), so the block matches torchvision's.

    References:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
        He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016.
        He et al., "Bag of Tricks for Image Classification with Convolutional
        Neural Networks", CVPR 2019 (the `"avg_pool"` shortcut, ResNet-D).

    Shortcuts (`shortcut=`):
        - `"auto"`: identity when the shapes match, otherwise `"projection"`.
        - `"identity"`: the input itself; needs `strides=1` and as many input
          channels as `filters`.
        - `"projection"`: strided 1x1 convolution + BN (option B/C). In a
          pre-activation block it sees the pre-activated input and has no BN.
        - `"zero_pad"`: option A of the ResNet paper: strided subsampling, then
          zero channels appended; no parameters. Cannot remove channels.
        - `"avg_pool"`: ResNet-D: `strides` x `strides` average pooling, then
          a 1x1 convolution + BN; as with `"projection"`, no BN in a
          pre-activation block.

    Weights, in this order (each present only when the configuration has it):
    `preact_bn`, `conv1` (kernel, BN), `shortcut_conv`, `conv2`, `shortcut_bn`,
    `bn2`, `se` (reduce, expand). This is the order of the same block written
    as a functional model, as `keras.applications` does, so
    `block.set_weights(functional_block.get_weights())` transfers weights.

    Args:
        filters: int. Output channels (and width of both convolutions).
        strides: int or tuple of 2 equal ints. Spatial stride of the block,
            the same along height and width (as `keras.layers.Conv2D` takes
            it; stored as the int).
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
            pre-activation block: the last convolution and the projection).
            `True` gives every convolution one, as `keras.applications`' ResNet
            v1 does.
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
        4D tensor with `filters` channels and spatial sizes
        `ceil(size / strides)`.

    Raises:
        ValueError: on an invalid argument, or when building on an input that
            is not 4D, has unknown channels, or does not fit the shortcut
            (`"identity"` with other channels, `"zero_pad"` with more).

    Examples:
        >>> import numpy as np
        >>> import keras_blocks
        >>> block = keras_blocks.layers.ResidualBlock(32, strides=2)
        >>> tuple(block(np.zeros((2, 16, 16, 16))).shape)
        (2, 8, 8, 32)
        >>> cifar = keras_blocks.layers.ResidualBlock(32, 2, shortcut="zero_pad")
        >>> tuple(cifar(np.zeros((2, 16, 16, 16))).shape), cifar.count_params()
        ((2, 8, 8, 32), 14080)
    """

    _last_kernel_size = 3

    def __init__(
        self,
        filters: int,
        strides: int | tuple[int, int] = 1,
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

    @property
    def output_channels(self):
        return self.filters

    def _branch_units(self, initializer=None):
        return [
            self._unit(self.filters, 3, self.strides, "conv1", initializer=initializer)
        ]
