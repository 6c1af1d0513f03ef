import re

import keras
import numpy as np
import pytest

from keras_blocks.layers import ConvBNAct
from tests.layers.layer_checks import (
    ARGUMENT_CHECKS,
    INPUT_SHAPE_CHECKS,
    WEIGHT_SHAPES,
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
        (dict(filters=8, strides=2, padding="symmetric"), (2, 8, 8, 3), (2, 4, 4, 8)),
        (dict(filters=6, kernel_size=3, padding="valid"), (2, 7, 5, 4), (2, 5, 3, 6)),
        (
            dict(filters=8, strides=2, groups=2, data_format="channels_first"),
            (2, 4, 9, 9),
            (2, 8, 5, 5),
        ),
        (
            dict(filters=4, kernel_size=1, batch_norm=False, activation=None),
            (2, 5, 5, 3),
            (2, 5, 5, 4),
        ),
        # A non-square kernel, as keras.layers.Conv2D takes it.
        (
            dict(filters=4, kernel_size=(3, 5), strides=2, padding="symmetric"),
            (2, 8, 8, 3),
            (2, 4, 4, 4),
        ),
    ],
)
def test_layer(kwargs, input_shape, output_shape, tmp_path):
    check_layer(ConvBNAct, kwargs, input_shape, tmp_path, output_shape)


def plain_keras_unit(
    input_shape,
    filters,
    kernel_size,
    strides,
    padding,
    groups,
    batch_norm,
    activation,
    data_format,
):
    inputs = keras.Input(input_shape[1:])
    x = inputs
    if padding == "symmetric" and strides > 1:
        # PyTorch's padding=(kh // 2, kw // 2): on both sides of each dimension.
        kh, kw = (kernel_size,) * 2 if isinstance(kernel_size, int) else kernel_size
        pads = ((kh // 2, kh // 2), (kw // 2, kw // 2))
        x = keras.layers.ZeroPadding2D(pads, data_format=data_format)(x)
        padding = "valid"
    elif padding == "symmetric":
        padding = "same"
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        groups=groups,
        use_bias=not batch_norm,
        data_format=data_format,
    )(x)
    if batch_norm:
        axis = -1 if data_format == "channels_last" else 1
        x = keras.layers.BatchNormalization(axis=axis, epsilon=1e-5)(x)
    if activation:
        x = keras.layers.Activation(activation)(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=3, strides=2, padding="same"),
        dict(kernel_size=3, strides=2, padding="valid"),
        dict(
            kernel_size=3, strides=2, padding="symmetric"
        ),  # even input: differs from same
        dict(kernel_size=5, strides=1, padding="symmetric"),
        dict(kernel_size=3, strides=1, padding="same", groups=2),
        dict(
            kernel_size=3,
            strides=1,
            padding="same",
            batch_norm=False,
            activation="swish",
        ),
        dict(
            kernel_size=3, strides=2, padding="symmetric", data_format="channels_first"
        ),
        # Non-square kernels: each dimension pads and strides on its own.
        dict(kernel_size=(3, 1), strides=2, padding="same"),
        dict(  # a plain convolution: Conv2D alone
            kernel_size=(1, 3),
            strides=2,
            padding="valid",
            batch_norm=False,
            activation=None,
        ),
        dict(kernel_size=(3, 5), strides=2, padding="symmetric"),
        dict(
            kernel_size=(1, 3),
            strides=2,
            padding="symmetric",
            data_format="channels_first",
        ),
    ],
)
def test_matches_plain_keras(kwargs):
    defaults = dict(
        padding="same",
        groups=1,
        batch_norm=True,
        activation="relu",
        data_format="channels_last",
    )
    extra = {k: v for k, v in kwargs.items() if k not in ("kernel_size", "strides")}
    options = {**defaults, **extra}
    data_format = options["data_format"]
    shape = (2, 8, 8, 4) if data_format == "channels_last" else (2, 4, 8, 8)
    reference = plain_keras_unit(
        shape, 6, kwargs["kernel_size"], kwargs["strides"], **options
    )
    randomize_weights(reference)
    unit = ConvBNAct(6, kwargs["kernel_size"], kwargs["strides"], **options)
    unit.build(shape)
    unit.set_weights(reference.get_weights())
    x = random_inputs(shape)
    np.testing.assert_allclose(
        to_numpy(unit(x, training=False)),
        run_reference(reference, x),
        atol=1e-5,
        rtol=1e-5,
    )


def test_symmetric_padding_differs_from_same_on_strided_even_inputs():
    x = random_inputs((1, 8, 8, 2))
    same = ConvBNAct(3, 3, 2, padding="same", batch_norm=False, activation=None)
    symmetric = ConvBNAct(
        3, 3, 2, padding="symmetric", batch_norm=False, activation=None
    )
    same.build(x.shape)
    symmetric.build(x.shape)
    symmetric.set_weights(same.get_weights())
    assert not np.allclose(to_numpy(same(x)), to_numpy(symmetric(x)))


@WEIGHT_SHAPES
@pytest.mark.parametrize(
    "kernel_size, expected",
    [(3, (3, 3)), ([3, 1], (3, 1)), ((np.int64(1), 3), (1, 3))],
)
def test_kernel_size_is_stored_as_keras_conv2d_stores_it(kernel_size, expected):
    # As keras.layers.Conv2D: an int or two, kept as a tuple of two ints.
    unit = ConvBNAct(4, kernel_size)
    assert keras.layers.Conv2D(4, kernel_size).kernel_size == expected
    assert unit.kernel_size == expected
    assert type(unit.kernel_size[0]) is int
    config = unit.get_config()
    assert config["kernel_size"] == expected
    assert ConvBNAct.from_config(config).get_config() == config
    unit.build((None, 6, 6, 2))
    assert tuple(unit.conv.kernel.shape) == (*expected, 2, 4)


@WEIGHT_SHAPES
def test_bias_only_without_batch_norm():
    def weight_names(unit):
        unit.build((None, 5, 5, 3))
        return [w.path.split("/", 1)[1] for w in unit.weights]

    assert "conv/bias" not in weight_names(ConvBNAct(4))
    assert weight_names(ConvBNAct(4, batch_norm=False)) == ["conv/kernel", "conv/bias"]
    assert "conv/bias" in weight_names(ConvBNAct(4, use_bias=True))


def test_no_activation_is_linear():
    unit = ConvBNAct(4, batch_norm=False, activation=None)
    x = random_inputs((2, 5, 5, 3))
    np.testing.assert_allclose(
        to_numpy(unit(2 * x)) - to_numpy(unit.conv.bias),
        2 * (to_numpy(unit(x)) - to_numpy(unit.conv.bias)),
        rtol=1e-5,
        atol=1e-5,
    )


@ARGUMENT_CHECKS
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(filters=0),
            "Invalid value for argument `filters`. Expected a strictly positive integer. Received: filters=0",
        ),
        (dict(filters=-1), "Received: filters=-1"),
        (dict(filters=2.5), "Received: filters=2.5"),
        (dict(filters=None), "Received: filters=None"),
        (dict(filters=True), "Received: filters=True"),
        (
            dict(filters=8, kernel_size=0),
            "Invalid value for argument `kernel_size`. Expected a strictly positive integer or a tuple of 2 strictly positive integers. Received: kernel_size=0",
        ),
        (dict(filters=8, kernel_size=(3,)), "Received: kernel_size=(3,)"),
        (dict(filters=8, kernel_size=(3, 0)), "Received: kernel_size=(3, 0)"),
        (dict(filters=8, kernel_size=(3, 3, 3)), "Received: kernel_size=(3, 3, 3)"),
        (dict(filters=8, kernel_size=(3, 2.0)), "Received: kernel_size=(3, 2.0)"),
        (dict(filters=8, kernel_size=(True, 3)), "Received: kernel_size=(True, 3)"),
        (dict(filters=8, kernel_size="3"), "Received: kernel_size='3'"),
        (dict(filters=8, kernel_size=True), "Received: kernel_size=True"),
        (dict(filters=8, kernel_size=None), "Received: kernel_size=None"),
        (
            dict(filters=8, kernel_size=2, padding="symmetric"),
            "Invalid value for argument `kernel_size`. Expected a strictly positive odd integer or a tuple of 2 strictly positive odd integers with padding='symmetric'. Received: kernel_size=2",
        ),
        (
            dict(filters=8, kernel_size=(3, 2), padding="symmetric"),
            "Received: kernel_size=(3, 2)",
        ),
        (
            dict(filters=8, strides=0),
            "Invalid value for argument `strides`. Expected a strictly positive integer or a tuple of 2 equal strictly positive integers (ConvBNAct strides height and width alike). Received: strides=0",
        ),
        (dict(filters=8, strides=(2, 1)), "Received: strides=(2, 1)"),
        (
            dict(filters=8, padding="full"),
            "Invalid value for argument `padding`. Expected one of ('same', 'valid', 'symmetric'). Received: padding='full'",
        ),
        (
            dict(filters=8, groups=3),
            "Invalid value for argument `groups`. Expected a divisor of `filters` (8). Received: groups=3",
        ),
        (
            dict(filters=8, bn_momentum=1.0),
            "Invalid value for argument `bn_momentum`. Expected a number in the range [0, 1). Received: bn_momentum=1.0",
        ),
        (
            dict(filters=8, bn_epsilon=0),
            "Invalid value for argument `bn_epsilon`. Expected a strictly positive finite number. Received: bn_epsilon=0",
        ),
        (
            dict(filters=8, activation="nope"),
            "Invalid value for argument `activation`. Expected an activation name or callable. Received: activation='nope'",
        ),
        (
            dict(filters=8, kernel_initializer="nope"),
            "Invalid value for argument `kernel_initializer`.",
        ),
        (
            dict(filters=8, data_format="NCHW"),
            "Invalid value for argument `data_format`. Expected one of ('channels_last', 'channels_first'). Received: data_format='NCHW'",
        ),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ConvBNAct(**kwargs)


@INPUT_SHAPE_CHECKS
@pytest.mark.parametrize(
    "kwargs, shape, message",
    [
        (
            dict(filters=4),
            (None, 8, 8),
            "Expected a 4D tensor (batch, height, width, channels). Received: input_shape=(None, 8, 8)",
        ),
        (dict(filters=4), (None, 8, 8, None), "The channel dimension must be known"),
        (
            dict(filters=4, groups=2),
            (None, 8, 8, 3),
            "has groups=2, which must divide the input channels. Received: input_shape=(None, 8, 8, 3)",
        ),
        (
            dict(filters=4, kernel_size=5, padding="valid"),
            (None, 8, 4, 3),
            "with padding='valid' needs inputs at least 5 high and 5 wide (kernel_size=(5, 5)). Received: input_shape=(None, 8, 4, 3)",
        ),
        (
            dict(filters=4, kernel_size=(1, 5), padding="valid"),
            (None, 8, 4, 3),
            "with padding='valid' needs inputs at least 1 high and 5 wide (kernel_size=(1, 5)). Received: input_shape=(None, 8, 4, 3)",
        ),
        (
            dict(
                filters=4,
                kernel_size=(5, 1),
                padding="valid",
                data_format="channels_first",
            ),
            (None, 3, 4, 8),
            "with padding='valid' needs inputs at least 5 high and 1 wide (kernel_size=(5, 1)). Received: input_shape=(None, 3, 4, 8)",
        ),
    ],
)
def test_bad_input_shapes(kwargs, shape, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ConvBNAct(**kwargs).build(shape)


@pytest.mark.backend_independent(reason="argument checks and configs in Python")
@pytest.mark.parametrize("strides", [(2, 2), [2, 2], (np.int64(2), np.int64(2))])
def test_an_equal_pair_of_strides_is_the_int(strides):
    # As keras.layers.Conv2D takes strides; stored as the int, so that configs
    # written with an int load alike.
    unit = ConvBNAct(4, 3, strides=strides, name="unit")
    assert unit.strides == 2 and type(unit.strides) is int
    assert unit.get_config() == ConvBNAct(4, 3, strides=2, name="unit").get_config()
    assert unit.compute_output_shape((None, 7, 8, 3)) == (None, 4, 4, 4)
