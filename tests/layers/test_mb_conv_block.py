import re

import keras
import numpy as np
import pytest
from keras import layers

from keras_blocks.layers import MBConvBlock
from tests.layers.layer_checks import (
    ARGUMENT_CHECKS,
    WEIGHT_SHAPES,
    assert_matches_reference,
    check_layer,
    random_inputs,
    run_reference,
    to_numpy,
)
from tests.layers.residual_reference import randomize_weights


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs, input_shape, output_shape",
    [
        # EfficientNet's repeated block: expansion 6, SE, skip, stochastic depth.
        (dict(filters=8, drop_path_rate=0.2), (2, 6, 6, 8), (2, 6, 6, 8)),
        # A stage's first block: stride 2 on an odd size, 5x5, new width.
        (dict(filters=12, kernel_size=5, strides=2), (2, 7, 7, 8), (2, 4, 4, 12)),
        # B0's first block: no expansion convolution.
        (dict(filters=4, expand_ratio=1), (2, 5, 5, 8), (2, 5, 5, 4)),
        # Fused-MBConv, channels first, without SE.
        (
            dict(
                filters=8,
                expand_ratio=4,
                fused=True,
                se_ratio=None,
                data_format="channels_first",
            ),
            (2, 8, 5, 5),
            (2, 8, 5, 5),
        ),
        # Fused without expansion: one kxk convolution, strided.
        (
            dict(filters=6, expand_ratio=1, fused=True, strides=2),
            (2, 6, 6, 4),
            (2, 3, 3, 6),
        ),
        # torchvision's padding: k // 2 on every side of the strided depthwise.
        (
            dict(filters=8, kernel_size=5, strides=2, padding="symmetric"),
            (2, 7, 6, 8),
            (2, 4, 3, 8),
        ),
    ],
)
def test_layer(kwargs, input_shape, output_shape, tmp_path):
    check_layer(MBConvBlock, kwargs, input_shape, tmp_path, output_shape)


# The same blocks written with plain Keras layers, as keras.applications
# writes them: EfficientNet's `block` (explicit "correct_pad" zero padding
# before a strided depthwise convolution) and EfficientNetV2's fused block.


def correct_pad(x, kernel):
    """keras.applications' padding before a stride-2 convolution of an odd
    kernel (an int, or (height, width)), dimension by dimension."""
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    pads = [
        (k // 2 - 1 + size % 2, k // 2)
        for size, k in zip(x.shape[1:3], kernel, strict=True)
    ]
    return layers.ZeroPadding2D(tuple(pads))(x)


def symmetric_pad(x, kernel):
    """PyTorch's padding of a convolution of an odd kernel: k // 2 each side."""
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    return layers.ZeroPadding2D(tuple((k // 2, k // 2) for k in kernel))(x)


def plain_keras_mbconv(
    input_shape, filters, kernel_size, strides, expand_ratio, fused, pad=correct_pad
):
    channels = input_shape[-1]
    expanded = channels * expand_ratio
    squeeze = max(1, int(channels * 0.25))

    def conv_bn(x, filters, kernel, stride, activation=True):
        if stride > 1:
            x = pad(x, kernel)
        x = layers.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding="valid" if stride > 1 else "same",
            use_bias=False,
        )(x)
        x = layers.BatchNormalization(epsilon=1e-3)(x)
        return layers.Activation("swish")(x) if activation else x

    inputs = keras.Input(input_shape[1:])
    x = inputs
    if fused and expand_ratio > 1:
        x = conv_bn(x, expanded, kernel_size, strides)
    elif not fused:
        if expand_ratio > 1:
            x = conv_bn(x, expanded, 1, 1)
        if strides > 1:
            x = pad(x, kernel_size)
        x = layers.DepthwiseConv2D(
            kernel_size,
            strides=strides,
            padding="valid" if strides > 1 else "same",
            use_bias=False,
        )(x)
        x = layers.Activation("swish")(layers.BatchNormalization(epsilon=1e-3)(x))
    se = layers.GlobalAveragePooling2D(keepdims=True)(x)
    se = layers.Conv2D(squeeze, 1, activation="swish")(se)
    se = layers.Conv2D(x.shape[-1], 1, activation="sigmoid")(se)
    x = layers.Multiply()([x, se])
    if fused and expand_ratio == 1:
        x = conv_bn(x, filters, kernel_size, strides)
    else:
        x = conv_bn(x, filters, 1, 1, activation=False)
    if strides == 1 and channels == filters:
        x = layers.Add()([x, inputs])
    return keras.Model(inputs, x)


@pytest.mark.slow
@pytest.mark.parametrize(
    "input_shape, filters, kernel_size, strides, expand_ratio, fused",
    [
        ((2, 8, 8, 8), 8, 3, 1, 6, False),  # skip
        ((2, 8, 8, 8), 16, 5, 2, 6, False),  # even size: pad (1, 2)
        ((2, 9, 9, 8), 16, 3, 2, 6, False),  # odd size: pad (1, 1)
        ((2, 7, 7, 16), 8, 3, 1, 1, False),  # no expansion
        ((2, 8, 8, 8), 8, 3, 1, 4, True),
        ((2, 8, 8, 8), 16, 3, 2, 4, True),
        ((2, 7, 7, 8), 8, 3, 1, 1, True),
        # Non-square kernels, as keras.layers.Conv2D takes them.
        ((2, 8, 7, 8), 16, (3, 5), 2, 6, False),  # pads (0, 1) rows, (2, 2) columns
        ((2, 7, 7, 8), 8, (3, 1), 1, 1, True),
    ],
)
def test_matches_keras_applications_block(
    input_shape, filters, kernel_size, strides, expand_ratio, fused
):
    reference = plain_keras_mbconv(
        input_shape, filters, kernel_size, strides, expand_ratio, fused
    )
    randomize_weights(reference)
    block = MBConvBlock(
        filters, kernel_size, strides=strides, expand_ratio=expand_ratio, fused=fused
    )
    block.build(input_shape)
    block.set_weights(reference.get_weights())  # same weight order
    x = random_inputs(input_shape)
    assert_matches_reference(block, reference, x, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "input_shape, filters, kernel_size, strides, expand_ratio, fused",
    [
        ((2, 8, 8, 8), 8, 3, 1, 6, False),  # stride 1: as "same"
        ((2, 8, 8, 8), 16, 5, 2, 6, False),  # even size: pad (2, 2), not (1, 2)
        ((2, 9, 9, 8), 16, 3, 2, 6, False),  # odd size: pad (1, 1) either way
        ((2, 8, 7, 8), 16, (3, 5), 2, 6, False),  # (1, 1) rows, (2, 2) columns
        ((2, 8, 8, 8), 16, 3, 2, 4, True),  # the fused expansion
        ((2, 8, 8, 8), 8, 3, 2, 1, True),  # the fused single convolution
    ],
)
def test_symmetric_padding_matches_plain_keras_block(
    input_shape, filters, kernel_size, strides, expand_ratio, fused
):
    reference = plain_keras_mbconv(
        input_shape, filters, kernel_size, strides, expand_ratio, fused, symmetric_pad
    )
    randomize_weights(reference)
    block = MBConvBlock(
        filters,
        kernel_size,
        strides=strides,
        padding="symmetric",
        expand_ratio=expand_ratio,
        fused=fused,
    )
    block.build(input_shape)
    block.set_weights(reference.get_weights())  # same weight order
    x = random_inputs(input_shape)
    np.testing.assert_allclose(
        to_numpy(block(x, training=False)),
        run_reference(reference, x, training=False),
        atol=1e-4,
        rtol=1e-4,
    )


@WEIGHT_SHAPES
def test_non_square_kernel():
    block = MBConvBlock(8, kernel_size=[1, 3])
    assert block.kernel_size == (1, 3)  # as keras.layers.Conv2D stores it
    assert block.get_config()["kernel_size"] == (1, 3)
    assert MBConvBlock(8).kernel_size == (3, 3)
    block.build((None, 6, 6, 4))
    assert tuple(block.depthwise.kernel.shape[:2]) == (1, 3)


@WEIGHT_SHAPES
def test_weight_order_and_squeeze_width():
    block = MBConvBlock(24, kernel_size=5, strides=2, expand_ratio=6)
    block.build((None, 8, 8, 16))
    names = [w.path.split("/", 1)[1] for w in block.weights]
    assert names == [
        "expand/conv/kernel",
        *(
            f"expand/bn/{v}"
            for v in ("gamma", "beta", "moving_mean", "moving_variance")
        ),
        "depthwise/kernel",
        *(
            f"depthwise_bn/{v}"
            for v in ("gamma", "beta", "moving_mean", "moving_variance")
        ),
        "se/reduce/kernel",
        "se/reduce/bias",
        "se/expand/kernel",
        "se/expand/bias",
        "project/conv/kernel",
        *(
            f"project/bn/{v}"
            for v in ("gamma", "beta", "moving_mean", "moving_variance")
        ),
    ]
    # The squeeze width comes from the block's 16 input channels, not the 96
    # expanded ones the gate sees: int(16 * 0.25) = 4.
    assert tuple(block.se.reduce.kernel.shape) == (1, 1, 96, 4)
    assert tuple(block.depthwise.kernel.shape) == (5, 5, 96, 1)


@pytest.mark.backend_independent(
    reason="the skip is decided in build, in Python; nothing computed"
)
@pytest.mark.parametrize(
    "kwargs, channels, has_skip",
    [
        (dict(filters=8), 8, True),
        (dict(filters=8, skip=False), 8, False),
        (dict(filters=8, strides=2), 8, False),
        (dict(filters=16), 8, False),
    ],
)
def test_skip_only_when_shapes_match(kwargs, channels, has_skip):
    block = MBConvBlock(**kwargs, drop_path_rate=0.5)
    block.build((None, 6, 6, channels))
    assert block.has_skip is has_skip
    assert (block.drop_path is not None) is has_skip


@pytest.mark.slow
def test_stochastic_depth_drops_whole_branch():
    block = MBConvBlock(4, expand_ratio=2, drop_path_rate=0.5)
    x = random_inputs((64, 4, 4, 4))
    y = to_numpy(block(x, training=True))
    same = np.all(y == x, axis=(1, 2, 3))
    # Dropped samples are exactly their input; kept ones are not.
    assert 10 < same.sum() < 54
    assert not np.allclose(y[~same], x[~same])


@ARGUMENT_CHECKS
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(filters=0),
            "Invalid value for argument `filters`. Expected a strictly positive integer. Received: filters=0",
        ),
        (
            dict(filters=8, kernel_size=0),
            "Invalid value for argument `kernel_size`. Expected a strictly positive integer or a tuple of 2 strictly positive integers. Received: kernel_size=0",
        ),
        (dict(filters=8, kernel_size=(3, 0)), "Received: kernel_size=(3, 0)"),
        (dict(filters=8, kernel_size=(3,)), "Received: kernel_size=(3,)"),
        (dict(filters=8, kernel_size="3"), "Received: kernel_size='3'"),
        (dict(filters=8, kernel_size=True), "Received: kernel_size=True"),
        (dict(filters=8, strides=-1), "Received: strides=-1"),
        (
            dict(filters=8, strides=(1, 2)),
            "Invalid value for argument `strides`. Expected a strictly positive integer or a tuple of 2 equal strictly positive integers (MBConvBlock strides height and width alike). Received: strides=(1, 2)",
        ),
        (
            dict(filters=8, expand_ratio=2.5),
            "Invalid value for argument `expand_ratio`. Expected a strictly positive integer. Received: expand_ratio=2.5",
        ),
        (
            dict(filters=8, se_ratio=0),
            "Invalid value for argument `se_ratio`. Expected a number in the range (0, 1]. Received: se_ratio=0",
        ),
        (dict(filters=8, fused="yes"), "Received: fused='yes'"),
        (dict(filters=8, skip=1), "Received: skip=1"),
        (
            dict(filters=8, drop_path_rate=1.0),
            "Invalid value for argument `drop_path_rate`. Expected a number in the range [0, 1). Received: drop_path_rate=1.0",
        ),
        (dict(filters=8, activation="swishy"), "Received: activation='swishy'"),
        (dict(filters=8, bn_epsilon=0), "Received: bn_epsilon=0"),
        (
            dict(filters=8, padding="valid"),
            "Invalid value for argument `padding`. Expected one of ('same', 'symmetric'). Received: padding='valid'",
        ),
        (
            dict(filters=8, kernel_size=(3, 4), padding="symmetric"),
            "Invalid value for argument `kernel_size`. Expected a strictly positive odd integer or a tuple of 2 strictly positive odd integers with padding='symmetric'. Received: kernel_size=(3, 4)",
        ),
        (dict(filters=8, data_format="NHWC"), "Received: data_format='NHWC'"),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        MBConvBlock(**kwargs)


def test_bad_input_shape():
    with pytest.raises(ValueError, match=re.escape("Expected a 4D tensor")):
        MBConvBlock(8).build((None, 8, 8))
    block = MBConvBlock(8)
    block.build((1, 4, 4, 8))
    with pytest.raises(
        ValueError, match="expected axis -1 of input shape to have value 8"
    ):
        block(random_inputs((1, 4, 4, 6)))


@pytest.mark.backend_independent(reason="argument checks and configs in Python")
def test_an_equal_pair_of_strides_is_the_int():
    block = MBConvBlock(8, strides=(2, 2), name="block")
    assert block.strides == 2 and type(block.strides) is int
    assert block.get_config() == MBConvBlock(8, strides=2, name="block").get_config()
    assert block.compute_output_shape((None, 7, 8, 4)) == (None, 4, 4, 8)
