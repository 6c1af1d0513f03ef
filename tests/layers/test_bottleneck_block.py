import re

import keras
import numpy as np
import pytest

from keras_blocks.layers import BottleneckBlock
from tests.layers.layer_checks import (
    ARGUMENT_CHECKS,
    INPUT_SHAPE_CHECKS,
    WEIGHT_SHAPES,
    assert_close_to_scale,
    assert_matches_reference,
    check_layer,
    random_inputs,
    run_reference,
    to_numpy,
)
from tests.layers.residual_reference import (
    plain_keras_block,
    randomize_weights,
    transfer_by_name,
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs, input_shape, output_shape",
    [
        # ResNet-50 stage 2, first block: projection to 4 * filters channels.
        (dict(filters=4), (2, 6, 6, 8), (2, 6, 6, 16)),
        # ResNeXt: grouped 3x3, channels first, stride 2 on an odd size, given
        # as keras.layers.Conv2D takes it too.
        (
            dict(
                filters=4,
                strides=(2, 2),
                groups=2,
                base_width=32,
                data_format="channels_first",
            ),
            (2, 16, 7, 7),
            (2, 16, 4, 4),
        ),
        # Pre-activation with the subsampling shortcut keras.applications' v2 uses.
        (
            dict(
                filters=4,
                strides=2,
                preact=True,
                shortcut="zero_pad",
                zero_init_last_bn=True,
            ),
            (2, 8, 8, 16),
            (2, 4, 4, 16),
        ),
        # The ResNet-D shortcut, SE and stochastic depth are the residual
        # base's, which ResidualBlock shares: test_residual_block.py's
        # test_layer checks them together (strides=3, shortcut="avg_pool").
    ],
)
def test_layer(kwargs, input_shape, output_shape, tmp_path):
    check_layer(BottleneckBlock, kwargs, input_shape, tmp_path, output_shape)


# keras.applications compatibility: the blocks of the real ResNet50 and
# ResNet50V2 graphs, cut out as sub-models, against ours with their weights.
# Built for 32x32 images and without the classifier: the blocks' weights are
# those of 224x224 ones, and stage 2 sees 8x8 maps (56x56 at 224), stage 3
# 4x4 (28x28): even sizes, as there.
APPLICATION_OPTIONS = dict(weights=None, include_top=False, input_shape=(32, 32, 3))


@pytest.fixture(scope="module")
def resnet50():
    return keras.applications.ResNet50(**APPLICATION_OPTIONS)


@pytest.fixture(scope="module")
def resnet50v2():
    return keras.applications.ResNet50V2(**APPLICATION_OPTIONS)


def _sub_model(app, input_layer, output_layer):
    return keras.Model(
        app.get_layer(input_layer).output, app.get_layer(output_layer).output
    )


def _check_same_outputs(reference, block, input_shape):
    randomize_weights(reference)
    block.build(input_shape)
    # The documented weight order is keras.applications' order.
    block.set_weights(reference.get_weights())
    x = random_inputs(input_shape)
    expected = run_reference(reference, x)
    assert_close_to_scale(block(x, training=False), expected)


@pytest.mark.slow
@pytest.mark.parametrize(
    "input_layer, output_layer, filters, strides, in_shape",
    [
        ("pool1_pool", "conv2_block1_out", 64, 1, (1, 8, 8, 64)),  # projection
        ("conv2_block3_out", "conv3_block1_out", 128, 2, (1, 8, 8, 256)),  # strided
        ("conv3_block1_out", "conv3_block2_out", 128, 1, (1, 4, 4, 512)),  # identity
    ],
)
def test_matches_keras_applications_resnet50(
    resnet50, input_layer, output_layer, filters, strides, in_shape
):
    block = BottleneckBlock(
        filters, strides, stride_in_1x1=True, use_bias=True, bn_epsilon=1.001e-5
    )
    reference = _sub_model(resnet50, input_layer, output_layer)
    _check_same_outputs(reference, block, in_shape)


@pytest.mark.slow
@pytest.mark.parametrize(
    "input_layer, output_layer, strides, shortcut, in_shape",
    [
        ("pool1_pool", "conv2_block1_out", 1, "projection", (1, 8, 8, 64)),
        ("conv2_block1_out", "conv2_block2_out", 1, "identity", (1, 8, 8, 256)),
        # The last block of a v2 stage is strided, with a subsampling shortcut.
        ("conv2_block2_out", "conv2_block3_out", 2, "zero_pad", (1, 8, 8, 256)),
    ],
)
def test_matches_keras_applications_resnet50v2(
    resnet50v2, input_layer, output_layer, strides, shortcut, in_shape
):
    block = BottleneckBlock(
        64, strides, preact=True, shortcut=shortcut, bn_epsilon=1.001e-5
    )
    reference = _sub_model(resnet50v2, input_layer, output_layer)
    _check_same_outputs(reference, block, in_shape)


# The variants keras.applications does not have, against plain Keras layers.


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(strides=2),  # v1.5: stride in the 3x3
        dict(strides=2, groups=4, base_width=32),  # ResNeXt
        dict(strides=2, shortcut="avg_pool", se_ratio=0.25),  # ResNet-D + SE
        dict(strides=2, preact=True, shortcut="avg_pool", se_ratio=0.5),
        dict(strides=2, shortcut="zero_pad", expansion=2),
        dict(strides=2, stride_in_1x1=True, data_format="channels_first"),
    ],
)
def test_matches_plain_keras(kwargs):
    filters, in_channels = 8, 12
    data_format = kwargs.get("data_format", "channels_last")
    block = BottleneckBlock(filters, **kwargs)
    strides, width = block.strides, block.width
    stride_1x1, stride_3x3 = (strides, 1) if block.stride_in_1x1 else (1, strides)
    if data_format == "channels_last":
        input_shape = (2, 9, 9, in_channels)
    else:
        input_shape = (2, in_channels, 9, 9)
    se_channels = None
    if block.se_ratio:
        se_channels = max(1, int(block.output_channels * block.se_ratio))
    reference = plain_keras_block(
        input_shape,
        units=[(width, 1, stride_1x1, 1), (width, 3, stride_3x3, block.groups)],
        last_kernel_size=1,
        out_channels=block.output_channels,
        strides=strides,
        preact=block.preact,
        shortcut=block.shortcut,
        se_channels=se_channels,
        data_format=data_format,
    )
    randomize_weights(reference)
    block.build(input_shape)
    transfer_by_name(reference, block)
    assert_matches_reference(
        block, reference, random_inputs(input_shape), atol=2e-5, rtol=1e-4
    )


@WEIGHT_SHAPES
def test_parameter_counts_match_torchvision():
    # torchvision resnet50.layer2[0] and resnext50_32x4d.layer2[0]; torchvision
    # counts trainable parameters (Keras also counts the BN moving statistics).
    resnet = BottleneckBlock(128, strides=2)
    resnet.build((None, 56, 56, 256))
    resnext = BottleneckBlock(128, strides=2, groups=32, base_width=4)
    resnext.build((None, 56, 56, 256))
    for block, trainable in ((resnet, 379_392), (resnext, 349_184)):
        count = sum(int(np.prod(w.shape)) for w in block.trainable_weights)
        assert count == trainable


@WEIGHT_SHAPES
def test_use_bias_rules():
    def biased(block):
        return sorted(
            w.path.split("/", 1)[1] for w in block.weights if "bias" in w.path
        )

    shape = (None, 8, 8, 4)
    v1, v2 = BottleneckBlock(4), BottleneckBlock(4, preact=True)
    v1.build(shape)
    v2.build(shape)
    assert biased(v1) == []
    # Pre-activation: bias only where no BN follows.
    assert biased(v2) == ["conv3/bias", "shortcut_conv/bias"]
    every = BottleneckBlock(4, use_bias=True)
    every.build(shape)
    assert len(biased(every)) == 4


def test_zero_init_last_bn_makes_the_block_its_shortcut():
    x = random_inputs((2, 6, 6, 16))
    v1 = BottleneckBlock(4, zero_init_last_bn=True)
    np.testing.assert_allclose(to_numpy(v1(x)), np.maximum(x, 0), atol=1e-6)
    v2 = BottleneckBlock(4, preact=True, zero_init_last_bn=True)
    np.testing.assert_allclose(to_numpy(v2(x)), x, atol=1e-6)


def test_zero_pad_shortcut_subsamples_and_appends_zero_channels():
    x = random_inputs((2, 7, 7, 6))
    block = BottleneckBlock(4, strides=2, preact=True, shortcut="zero_pad")
    block.build(x.shape)
    block.last_conv.kernel.assign(np.zeros(block.last_conv.kernel.shape))
    block.last_conv.bias.assign(np.zeros(block.last_conv.bias.shape))
    expected = np.pad(x[:, ::2, ::2, :], [(0, 0), (0, 0), (0, 0), (0, 10)])
    np.testing.assert_array_equal(to_numpy(block(x)), expected)
    assert block.count_params() == sum(
        int(np.prod(w.shape)) for w in block.weights if "shortcut" not in w.path
    )


def test_drop_path_changes_training_outputs_only():
    x = random_inputs((8, 5, 5, 16))
    plain = BottleneckBlock(4)
    dropped = BottleneckBlock(4, drop_path_rate=0.5)
    plain.build(x.shape)
    dropped.build(x.shape)
    dropped.set_weights(plain.get_weights())
    np.testing.assert_array_equal(to_numpy(dropped(x)), to_numpy(plain(x)))
    assert not np.allclose(
        to_numpy(dropped(x, training=True)), to_numpy(plain(x, training=True))
    )


@ARGUMENT_CHECKS
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(filters=0),
            "Invalid value for argument `filters`. Expected a strictly positive integer. Received: filters=0",
        ),
        (
            dict(filters=4, expansion=0),
            "Invalid value for argument `expansion`. Expected a strictly positive integer. Received: expansion=0",
        ),
        (
            dict(filters=4, groups=2.0),
            "Invalid value for argument `groups`. Expected a strictly positive integer. Received: groups=2.0",
        ),
        (
            dict(filters=4, base_width=8),
            "Invalid value for argument `base_width`. Expected a value that gives at least one channel per group: int(filters * base_width / 64) = 0 with filters=4. Received: base_width=8",
        ),
        (
            dict(filters=4, stride_in_1x1="yes"),
            "Invalid value for argument `stride_in_1x1`. Expected a boolean. Received: stride_in_1x1='yes'",
        ),
        (
            dict(filters=4, shortcut="conv"),
            "Invalid value for argument `shortcut`. Expected one of ('auto', 'identity', 'projection', 'zero_pad', 'avg_pool'). Received: shortcut='conv'",
        ),
        (
            dict(filters=4, strides=2, shortcut="identity"),
            "Invalid value for argument `shortcut`. An identity shortcut needs strides=1",
        ),
        (
            dict(filters=4, strides=(1, 2)),
            "Invalid value for argument `strides`. Expected a strictly positive integer or a tuple of 2 equal strictly positive integers (BottleneckBlock strides height and width alike). Received: strides=(1, 2)",
        ),
        (
            dict(filters=4, strides=(2, 2), shortcut="identity"),
            "Invalid value for argument `shortcut`. An identity shortcut needs strides=1; use 'auto', 'projection', 'zero_pad' or 'avg_pool' with strides=2.",
        ),
        (
            dict(filters=4, se_ratio=0),
            "Invalid value for argument `se_ratio`. Expected a number in the range (0, 1]. Received: se_ratio=0",
        ),
        (
            dict(filters=4, drop_path_rate=1.0),
            "Invalid value for argument `drop_path_rate`. Expected a number in the range [0, 1). Received: drop_path_rate=1.0",
        ),
        (
            dict(filters=4, activation="relu7"),
            "Invalid value for argument `activation`. Expected an activation name or callable. Received: activation='relu7'",
        ),
        (
            dict(filters=4, data_format="NHWC"),
            "Invalid value for argument `data_format`. Expected one of ('channels_last', 'channels_first'). Received: data_format='NHWC'",
        ),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        BottleneckBlock(**kwargs)


@INPUT_SHAPE_CHECKS
@pytest.mark.parametrize(
    "kwargs, input_shape, message",
    [
        (
            dict(filters=4),
            (None, 8, 8),
            "Expected a 4D tensor (batch, height, width, channels). Received: input_shape=(None, 8, 8)",
        ),
        (dict(filters=4), (None, 8, 8, None), "The channel dimension must be known"),
        (
            dict(filters=4, shortcut="identity"),
            (None, 8, 8, 8),
            "has an identity shortcut, which needs as many input channels as output channels (16)",
        ),
        (
            dict(filters=2, shortcut="zero_pad"),
            (None, 8, 8, 16),
            "has a zero_pad shortcut, which can add channels but not remove them: the input has 16, the output 8",
        ),
    ],
)
def test_bad_input_shapes(kwargs, input_shape, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        BottleneckBlock(**kwargs).build(input_shape)
