import re

import keras
import numpy as np
import pytest

from keras_blocks.layers import SqueezeExcite
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
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_layer(data_format, tmp_path):
    shape = (2, 5, 5, 8) if data_format == "channels_last" else (2, 8, 5, 5)
    kwargs = dict(ratio=0.25, data_format=data_format)
    check_layer(SqueezeExcite, kwargs, shape, tmp_path, expected_output_shape=shape)


def plain_keras_se(input_shape, squeeze, data_format):
    axis = -1 if data_format == "channels_last" else 1
    inputs = keras.Input(input_shape[1:])
    s = keras.layers.GlobalAveragePooling2D(data_format=data_format, keepdims=True)(
        inputs
    )
    s = keras.layers.Conv2D(squeeze, 1, activation="relu", data_format=data_format)(s)
    s = keras.layers.Conv2D(
        input_shape[axis], 1, activation="sigmoid", data_format=data_format
    )(s)
    return keras.Model(inputs, keras.layers.Multiply()([inputs, s]))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_matches_plain_keras(data_format):
    shape = (2, 6, 5, 16) if data_format == "channels_last" else (2, 16, 6, 5)
    reference = plain_keras_se(shape, 4, data_format)
    randomize_weights(reference)
    layer = SqueezeExcite(ratio=0.25, data_format=data_format)
    layer.build(shape)
    layer.set_weights(reference.get_weights())  # same weight order
    x = random_inputs(shape)
    np.testing.assert_allclose(
        to_numpy(layer(x)), run_reference(reference, x), atol=1e-5, rtol=1e-5
    )


@WEIGHT_SHAPES
@pytest.mark.parametrize(
    "kwargs, channels, squeeze",
    [
        (dict(ratio=1 / 16), 64, 4),
        (dict(ratio=0.01), 8, 1),  # at least one channel
        (dict(ratio=0.25, squeeze_channels=5), 64, 5),  # explicit width wins
    ],
)
def test_squeeze_width(kwargs, channels, squeeze):
    layer = SqueezeExcite(**kwargs)
    layer.build((None, 4, 4, channels))
    assert [tuple(w.shape) for w in layer.weights] == [
        (1, 1, channels, squeeze),
        (squeeze,),
        (1, 1, squeeze, channels),
        (channels,),
    ]


def test_gate_only_shrinks():
    x = random_inputs((4, 5, 5, 8), scale=3.0)
    y = to_numpy(SqueezeExcite()(x))
    assert (np.abs(y) <= np.abs(x)).all()
    assert (np.sign(y) == np.sign(x))[x != 0].all()


@ARGUMENT_CHECKS
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(ratio=0),
            "Invalid value for argument `ratio`. Expected a number in the range (0, 1]. Received: ratio=0",
        ),
        (dict(ratio=-0.5), "Received: ratio=-0.5"),
        (dict(ratio=1.5), "Received: ratio=1.5"),
        (dict(ratio="x"), "Received: ratio='x'"),
        (
            dict(squeeze_channels=0),
            "Invalid value for argument `squeeze_channels`. Expected a strictly positive integer. Received: squeeze_channels=0",
        ),
        (dict(squeeze_channels=2.5), "Received: squeeze_channels=2.5"),
        (
            dict(activation="not_an_activation"),
            "Invalid value for argument `activation`. Expected an activation name or callable. Received: activation='not_an_activation'",
        ),
        (dict(gate_activation="nope"), "Invalid value for argument `gate_activation`."),
        (
            dict(data_format="channels_middle"),
            "Invalid value for argument `data_format`. Expected one of ('channels_last', 'channels_first'). Received: data_format='channels_middle'",
        ),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SqueezeExcite(**kwargs)


@INPUT_SHAPE_CHECKS
def test_bad_input_shape():
    with pytest.raises(ValueError, match=re.escape("Expected a 4D tensor")):
        SqueezeExcite().build((None, 16))
