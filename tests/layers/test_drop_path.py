import re

import keras
import numpy as np
import pytest

from keras_blocks.layers import DropPath
from tests.layers.layer_checks import (
    ARGUMENT_CHECKS,
    check_layer,
    random_inputs,
    to_numpy,
)


@pytest.mark.slow
def test_layer(tmp_path):
    check_layer(DropPath, dict(rate=0.3, seed=1), (4, 5, 5, 3), tmp_path, (4, 5, 5, 3))


def test_identity_at_inference():
    x = random_inputs((16, 3, 3, 2))
    layer = DropPath(0.9)
    np.testing.assert_array_equal(to_numpy(layer(x)), x)
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)


@pytest.mark.parametrize(
    "shape", [(64, 3), (64, 3, 2), (64, 3, 2, 2), (64, 2, 2, 2, 2)]
)
def test_drops_whole_samples_and_scales_survivors(shape):
    rate = 0.4
    x = random_inputs(shape) + 5.0  # no zeros in the input
    y = to_numpy(DropPath(rate, seed=3)(x, training=True)).reshape(shape[0], -1)
    flat = x.reshape(shape[0], -1)
    dropped = (y == 0).all(axis=1)
    kept = np.isclose(y, flat / (1 - rate), rtol=1e-6).all(axis=1)
    assert (dropped ^ kept).all()  # each sample wholly dropped or wholly kept
    assert dropped.any() and kept.any()


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_keep_rate_statistics(rate):
    n = 20_000
    y = to_numpy(DropPath(rate, seed=7)(np.ones((n, 1), "float32"), training=True))
    kept = (y[:, 0] != 0).mean()
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept - (1 - rate)) < 4 * sigma
    assert abs(y.mean() - 1.0) < 4 * sigma / (1 - rate)  # unbiased


def test_rate_zero_is_identity_in_training():
    x = random_inputs((8, 4))
    np.testing.assert_array_equal(to_numpy(DropPath(0.0)(x, training=True)), x)


def test_same_seed_same_mask():
    x = np.ones((256, 1), "float32")
    first = to_numpy(DropPath(0.5, seed=42)(x, training=True))
    second = to_numpy(DropPath(0.5, seed=42)(x, training=True))
    np.testing.assert_array_equal(first, second)


def test_drops_inside_a_model_in_training_only():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, DropPath(0.5, seed=0)(inputs))
    x = np.ones((512, 4), "float32")
    assert (to_numpy(model(x, training=True)) == 0).any()
    np.testing.assert_array_equal(to_numpy(model(x, training=False)), x)


@ARGUMENT_CHECKS
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(rate=-0.1),
            "Invalid value for argument `rate`. Expected a number in the range [0, 1). Received: rate=-0.1",
        ),
        (
            dict(rate=1.0),
            "Invalid value for argument `rate`. Expected a number in the range [0, 1). Received: rate=1.0",
        ),
        (dict(rate=1.5), "Received: rate=1.5"),
        (dict(rate="0.5"), "Received: rate='0.5'"),
        (dict(rate=None), "Received: rate=None"),
        (
            dict(rate=0.1, seed=-1),
            "Invalid value for argument `seed`. Expected a non-negative integer. Received: seed=-1",
        ),
        (dict(rate=0.1, seed=1.5), "Received: seed=1.5"),
        (dict(rate=0.1, seed="a"), "Received: seed='a'"),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DropPath(**kwargs)


def test_scalar_input_is_rejected():
    with pytest.raises(
        ValueError, match=re.escape("Expected a tensor with a batch axis")
    ):
        DropPath(0.1).build(())
