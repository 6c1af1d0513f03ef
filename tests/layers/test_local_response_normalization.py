import re

import keras
import numpy as np
import pytest

from keras_blocks.layers import LocalResponseNormalization, local_response_normalization
from tests.layers.layer_checks import (
    ARGUMENT_CHECKS,
    INPUT_SHAPE_CHECKS,
    check_layer,
    random_inputs,
    to_numpy,
)

tf = pytest.importorskip("tensorflow")  # The reference op.

# AlexNet's n=5, k=2, alpha=1e-4, beta=0.75 in tf.nn.lrn's terms: our defaults.
PAPER = dict(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)


def tf_lrn(x, data_format="channels_last", **kwargs):
    if data_format == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    y = tf.nn.local_response_normalization(x, **kwargs).numpy()
    return y.transpose(0, 3, 1, 2) if data_format == "channels_first" else y


@pytest.mark.slow
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_layer(data_format, tmp_path):
    shape = (2, 5, 5, 8) if data_format == "channels_last" else (2, 8, 5, 5)
    check_layer(
        LocalResponseNormalization,
        dict(data_format=data_format),
        shape,
        tmp_path,
        expected_output_shape=shape,
    )


@pytest.mark.parametrize(
    "kwargs, scale",
    [
        (dict(), 1.0),  # the defaults, checked against the paper's values
        (dict(depth_radius=0, bias=1.0, alpha=0.5, beta=0.5), 1.0),
        (dict(depth_radius=20, bias=1.0, alpha=1e-3, beta=0.75), 3.0),  # r > channels
        (dict(depth_radius=2, bias=2.0, alpha=1e-2, beta=0.75), 10.0),
        (dict(depth_radius=3, bias=0.5, alpha=1.0, beta=1.0), 1.0),
        (dict(depth_radius=2, bias=1.0, alpha=0.1, beta=0.6), 1.0),  # power
    ],
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("channels", [12, 129])
# The window sums of channels_last: a band-matrix product or shifted slices.
@pytest.mark.parametrize("band_max", [0, 4096])
def test_matches_tensorflow_op(
    kwargs, scale, data_format, channels, band_max, monkeypatch
):
    monkeypatch.setitem(
        local_response_normalization.BAND_MATMUL_MAX_CHANNELS,
        keras.config.backend(),
        band_max,
    )
    x = random_inputs((2, 6, 5, channels), scale=scale)
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    layer = LocalResponseNormalization(**kwargs, data_format=data_format)
    expected = tf_lrn(x, data_format, **{**PAPER, **kwargs})
    assert np.abs(to_numpy(layer(x)) - expected).max() <= 1e-5


def test_float16_accumulates_in_float32():
    # Squares of activations above 256 overflow float16 (max 65504).
    x = random_inputs((2, 4, 4, 8), scale=1000.0)
    kwargs = dict(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
    layer = LocalResponseNormalization(**kwargs, dtype="mixed_float16")
    y = to_numpy(layer(keras.ops.cast(x, "float16"))).astype("float32")
    assert np.isfinite(y).all()
    expected = tf_lrn(x.astype("float16").astype("float32"), **kwargs)
    np.testing.assert_allclose(y, expected, rtol=2e-3, atol=1e-2)


@pytest.mark.backends(
    "tensorflow", reason="the reference gradient needs tf.GradientTape"
)
@pytest.mark.parametrize("band_max", [0, 4096])
def test_gradient_matches_tensorflow_op(band_max, monkeypatch):
    monkeypatch.setitem(
        local_response_normalization.BAND_MATMUL_MAX_CHANNELS, "tensorflow", band_max
    )
    x = tf.constant(random_inputs((2, 4, 4, 9), scale=5.0))
    kwargs = dict(depth_radius=2, bias=1.0, alpha=1e-2, beta=0.75)
    layer = LocalResponseNormalization(**kwargs)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = tf.reduce_sum(layer(x) ** 2)
        reference = tf.reduce_sum(tf.nn.local_response_normalization(x, **kwargs) ** 2)
    np.testing.assert_allclose(
        tape.gradient(ours, x).numpy(),
        tape.gradient(reference, x).numpy(),
        rtol=1e-4,
        atol=1e-5,
    )


@ARGUMENT_CHECKS
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(depth_radius=-1),
            "Invalid value for argument `depth_radius`. Expected a non-negative integer. Received: depth_radius=-1",
        ),
        (
            dict(depth_radius=2.5),
            "Invalid value for argument `depth_radius`. Expected a non-negative integer. Received: depth_radius=2.5",
        ),
        (
            dict(bias=0),
            "Invalid value for argument `bias`. Expected a strictly positive finite number. Received: bias=0",
        ),
        (
            dict(alpha=-1e-4),
            "Invalid value for argument `alpha`. Expected a non-negative finite number. Received: alpha=-0.0001",
        ),
        (
            dict(beta="0.75"),
            "Invalid value for argument `beta`. Expected a non-negative finite number. Received: beta='0.75'",
        ),
        (
            dict(data_format="nhwc"),
            "Invalid value for argument `data_format`. Expected one of ('channels_last', 'channels_first'). Received: data_format='nhwc'",
        ),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        LocalResponseNormalization(**kwargs)


@INPUT_SHAPE_CHECKS
@pytest.mark.parametrize(
    "shape, message",
    [
        (
            (None, 8, 8),
            "Expected a 4D tensor (batch, height, width, channels). Received: input_shape=(None, 8, 8)",
        ),
        ((None, 8, 8, None), "The channel dimension must be known"),
    ],
)
def test_bad_input_shapes(shape, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        LocalResponseNormalization().build(shape)
