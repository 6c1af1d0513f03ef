import random
import re

import keras
import numpy as np
import pytest

from keras_blocks.layers import ResidualBlock
from tests.layers.layer_checks import (
    ARGUMENT_CHECKS,
    INPUT_SHAPE_CHECKS,
    WEIGHT_SHAPES,
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
        (dict(filters=8), (2, 6, 6, 8), (2, 6, 6, 8)),  # identity
        # A strided projection in channels_first is the residual base's, which
        # BottleneckBlock shares: test_bottleneck_block.py's test_layer checks
        # it (strides=2, channels_first); this block's own branch is checked
        # strided below.
        # CIFAR ResNet: option A shortcut, pre-activation.
        (
            dict(filters=8, strides=2, shortcut="zero_pad", preact=True),
            (2, 8, 8, 4),
            (2, 4, 4, 8),
        ),
        (
            dict(
                filters=4,
                strides=3,
                shortcut="avg_pool",
                se_ratio=0.5,
                drop_path_rate=0.3,
            ),
            (2, 7, 7, 4),
            (2, 3, 3, 4),
        ),
    ],
)
def test_layer(kwargs, input_shape, output_shape, tmp_path):
    check_layer(ResidualBlock, kwargs, input_shape, tmp_path, output_shape)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(strides=2),
        dict(strides=2, preact=True),
        dict(strides=2, shortcut="zero_pad"),
        dict(strides=2, preact=True, shortcut="avg_pool", se_ratio=0.25),
        dict(strides=2, use_bias=True, data_format="channels_first"),
    ],
)
def test_matches_plain_keras(kwargs):
    filters = 8
    data_format = kwargs.get("data_format", "channels_last")
    block = ResidualBlock(filters, **kwargs)
    in_channels = filters if block.strides == 1 else 6
    if data_format == "channels_last":
        input_shape = (2, 8, 8, in_channels)
    else:
        input_shape = (2, in_channels, 8, 8)
    se_channels = max(1, int(filters * block.se_ratio)) if block.se_ratio else None
    reference = plain_keras_block(
        input_shape,
        units=[(filters, 3, block.strides, 1)],
        last_kernel_size=3,
        out_channels=filters,
        strides=block.strides,
        preact=block.preact,
        shortcut=block.shortcut,
        se_channels=se_channels,
        use_bias=block.use_bias,
        data_format=data_format,
    )
    randomize_weights(reference)
    block.build(input_shape)
    transfer_by_name(reference, block)
    assert_matches_reference(
        block, reference, random_inputs(input_shape), atol=2e-5, rtol=1e-4
    )


@pytest.mark.slow
def test_weight_order_is_functional_order():
    # Written as a functional model, a projection block holds its weights as
    # conv1, bn1, shortcut conv, conv2, shortcut BN, bn2: set_weights agrees.
    input_shape = (2, 8, 8, 4)
    reference = plain_keras_block(
        input_shape, [(8, 3, 2, 1)], 3, out_channels=8, strides=2
    )
    randomize_weights(reference)
    block = ResidualBlock(8, strides=2)
    block.build(input_shape)
    block.set_weights(reference.get_weights())
    x = random_inputs(input_shape)
    np.testing.assert_allclose(
        to_numpy(block(x)), run_reference(reference, x), atol=2e-5, rtol=1e-4
    )
    bn = ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.path.split("/", 1)[1] for w in block.weights] == [
        "conv1/conv/kernel",
        *(f"conv1/bn/{name}" for name in bn),
        "shortcut_conv/kernel",
        "conv2/kernel",
        *(f"shortcut_bn/{name}" for name in bn),
        *(f"bn2/{name}" for name in bn),
    ]


@WEIGHT_SHAPES
def test_parameter_count_matches_torchvision():
    # torchvision resnet18.layer2[0]: 230,144 trainable parameters.
    block = ResidualBlock(128, strides=2)
    block.build((None, 56, 56, 64))
    trainable = sum(int(np.prod(w.shape)) for w in block.trainable_weights)
    assert trainable == 230_144
    assert block.count_params() == 230_144 + 3 * 2 * 128  # BN moving statistics


@pytest.mark.slow
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_option_a_shortcut_in_numpy(data_format):
    # With the last BN zeroed the block is relu(shortcut): strided
    # subsampling, then zero channels appended, and no parameters.
    block = ResidualBlock(
        10,
        strides=2,
        shortcut="zero_pad",
        zero_init_last_bn=True,
        data_format=data_format,
    )
    x = random_inputs((2, 7, 7, 4))
    expected = np.maximum(np.pad(x[:, ::2, ::2, :], [(0, 0)] * 3 + [(0, 6)]), 0)
    if data_format == "channels_first":
        x, expected = x.transpose(0, 3, 1, 2), expected.transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(to_numpy(block(x)), expected)
    assert not any("shortcut" in w.path for w in block.weights)


def test_zero_init_last_bn():
    v1 = ResidualBlock(4, zero_init_last_bn=True)
    v1.build((None, 5, 5, 4))
    np.testing.assert_array_equal(to_numpy(v1.last_bn.gamma), np.zeros(4))
    v2 = ResidualBlock(4, preact=True, zero_init_last_bn=True)
    x = random_inputs((2, 5, 5, 4))
    np.testing.assert_array_equal(to_numpy(v2(x)), x)  # identity at start


@ARGUMENT_CHECKS
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(filters=-3),
            "Invalid value for argument `filters`. Expected a strictly positive integer. Received: filters=-3",
        ),
        (
            dict(filters=4, strides=0),
            "Invalid value for argument `strides`. Expected a strictly positive integer or a tuple of 2 equal strictly positive integers (ResidualBlock strides height and width alike). Received: strides=0",
        ),
        (
            dict(filters=4, strides=(2, 1)),
            "Invalid value for argument `strides`. Expected a strictly positive integer or a tuple of 2 equal strictly positive integers (ResidualBlock strides height and width alike). Received: strides=(2, 1)",
        ),
        (
            dict(filters=4, strides=(2, 2, 2)),
            "Invalid value for argument `strides`. Expected a strictly positive integer or a tuple of 2 equal strictly positive integers (ResidualBlock strides height and width alike). Received: strides=(2, 2, 2)",
        ),
        (
            dict(filters=4, preact=1),
            "Invalid value for argument `preact`. Expected a boolean. Received: preact=1",
        ),
        (
            dict(filters=4, shortcut=None),
            "Invalid value for argument `shortcut`. Expected one of ('auto', 'identity', 'projection', 'zero_pad', 'avg_pool'). Received: shortcut=None",
        ),
        (
            dict(filters=4, strides=2, shortcut="identity"),
            "Invalid value for argument `shortcut`. An identity shortcut needs strides=1; use 'auto', 'projection', 'zero_pad' or 'avg_pool' with strides=2. Received: shortcut='identity'",
        ),
        (
            dict(filters=4, se_ratio=1.5),
            "Invalid value for argument `se_ratio`. Expected a number in the range (0, 1]. Received: se_ratio=1.5",
        ),
        (
            dict(filters=4, drop_path_rate=-0.1),
            "Invalid value for argument `drop_path_rate`. Expected a number in the range [0, 1). Received: drop_path_rate=-0.1",
        ),
        (
            dict(filters=4, use_bias="auto"),
            "Invalid value for argument `use_bias`. Expected a boolean. Received: use_bias='auto'",
        ),
        (
            dict(filters=4, bn_epsilon=0.0),
            "Invalid value for argument `bn_epsilon`. Expected a strictly positive finite number. Received: bn_epsilon=0.0",
        ),
        (
            dict(filters=4, kernel_initializer="he_fancy"),
            "Invalid value for argument `kernel_initializer`. Expected an initializer name, config or instance. Received: kernel_initializer='he_fancy'",
        ),
        (
            dict(filters=4, kernel_regularizer="l3"),
            "Invalid value for argument `kernel_regularizer`. Expected a regularizer name, config or instance. Received: kernel_regularizer='l3'",
        ),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ResidualBlock(**kwargs)


@ARGUMENT_CHECKS
@pytest.mark.parametrize("strides", [(2, 2), [2, 2], (np.int64(2), np.int64(2))])
def test_an_equal_pair_of_strides_is_the_int(strides):
    # As keras.layers.Conv2D takes strides; stored as the int, so that configs
    # written with an int (before pairs were taken) load alike.
    block = ResidualBlock(4, strides=strides, shortcut="zero_pad", name="block")
    assert block.strides == 2 and type(block.strides) is int
    config = block.get_config()
    assert config["strides"] == 2
    assert ResidualBlock.from_config(config).get_config() == config
    same = ResidualBlock(4, strides=2, shortcut="zero_pad", name="block")
    assert config == same.get_config()
    assert block.compute_output_shape((None, 7, 8, 4)) == (None, 4, 4, 4)


@pytest.mark.backend_independent(reason="compute_output_shape: layers' arithmetic")
def test_output_shape_before_build_is_the_branchs_and_draws_no_seed():
    def custom(x):  # an activation Keras cannot look up by name
        return keras.ops.relu(x)

    block = ResidualBlock(
        4, strides=2, activation=custom, kernel_regularizer=keras.regularizers.L2()
    )
    state = random.getstate()  # unseeded initializers draw their seeds here
    assert block.compute_output_shape((None, 9, 7, 3)) == (None, 5, 4, 4)
    assert random.getstate() == state
    block.build((None, 9, 7, 3))
    assert block.compute_output_shape((None, 9, 7, 3)) == (None, 5, 4, 4)


@INPUT_SHAPE_CHECKS
@pytest.mark.parametrize(
    "kwargs, input_shape, message",
    [
        (
            dict(filters=4),
            (None, 4),
            "Expected a 4D tensor (batch, height, width, channels). Received: input_shape=(None, 4)",
        ),
        (
            dict(filters=4, data_format="channels_first"),
            (None, None, 8, 8),
            "The channel dimension must be known (batch, channels, height, width)",
        ),
        (
            dict(filters=4, shortcut="identity"),
            (None, 8, 8, 3),
            "has an identity shortcut, which needs as many input channels as output channels (4)",
        ),
        (
            dict(filters=4, shortcut="zero_pad"),
            (None, 8, 8, 5),
            "has a zero_pad shortcut, which can add channels but not remove them: the input has 5, the output 4",
        ),
    ],
)
def test_bad_input_shapes(kwargs, input_shape, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ResidualBlock(**kwargs).build(input_shape)


def test_call_on_other_channels_after_build_is_a_clear_error():
    block = ResidualBlock(4)
    block.build((None, 8, 8, 4))
    with pytest.raises(
        ValueError, match="expected axis -1 of input shape to have value 4"
    ):
        block(random_inputs((1, 8, 8, 6)))
