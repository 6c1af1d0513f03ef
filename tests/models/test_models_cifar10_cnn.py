"""The course's CIFAR-10 CNN (keras_blocks.models.cifar10_cnn): parameter count, its
switches (Flatten, L2, initializer), bad arguments, the command line, saving."""

import math
import re

import keras
import numpy as np
import pytest

from keras_blocks.models import get_model
from keras_blocks.models.cifar10_cnn import CIFAR10CNN
from tests.layers.layer_checks import to_numpy
from tests.models.model_checks import (
    argument_checks,
    builders_arithmetic,
    trainable_count,
)

PARAMS = 295_312  # pinned; see expected_params for the arithmetic
TRAINABLE = 294_416  # without the BN moving statistics
FLATTEN_PARAMS = 391_312


def expected_params(size=32, classes=10, flatten=False):
    """The count from the layer shapes, written out independently of the table."""
    total, channels = 0, 3
    for filters in (32, 32, 64, 64, 128, 128):
        # Bias-free 3x3 kernel, then BN's gamma, beta, moving mean and variance.
        total += 3 * 3 * channels * filters + 4 * filters
        channels = filters
    features = (size // 8) ** 2 * channels if flatten else channels
    total += features * 50 + 50  # hidden layer
    return total + 50 * classes + classes


@builders_arithmetic
def test_parameter_count_is_pinned():
    model = get_model("cifar10_cnn", input_shape=None, classes=10)
    assert model.count_params() == PARAMS == expected_params()
    assert trainable_count(model) == TRAINABLE
    assert PARAMS - TRAINABLE == 2 * (32 + 32 + 64 + 64 + 128 + 128)
    assert model.output_shape == (None, 10)


@builders_arithmetic
def test_flatten_changes_only_the_hidden_layer():
    flat = CIFAR10CNN(flatten=True)
    assert flat.count_params() == FLATTEN_PARAMS == expected_params(flatten=True)
    # The hidden layer sees 4 * 4 * 128 features instead of 128.
    assert FLATTEN_PARAMS - PARAMS == (4 * 4 - 1) * 128 * 50
    assert flat.get_layer("flatten").output.shape == (None, 2048)
    size = 48
    assert CIFAR10CNN(flatten=True, input_shape=(size, size, 3)).count_params() == (
        expected_params(size, flatten=True)
    )
    # Global average pooling makes the count independent of the image size.
    assert CIFAR10CNN(input_shape=(size, size, 3)).count_params() == PARAMS


def test_headless_outputs():
    assert CIFAR10CNN(include_top=False).output_shape == (None, 4, 4, 128)
    assert CIFAR10CNN(include_top=False, pooling="avg").output_shape == (None, 128)
    assert CIFAR10CNN(include_top=False, pooling="max").output_shape == (None, 128)


def kernels(model):
    return [w for w in model.trainable_weights if w.path.endswith("kernel")]


def test_l2_adds_a_loss_per_kernel():
    factor = 1e-3
    model = CIFAR10CNN(l2=factor)
    assert len(kernels(model)) == 8  # six convolutions, two dense layers
    assert len(model.losses) == 8
    total = sum(float(to_numpy(loss)) for loss in model.losses)
    expected = factor * sum(float(np.sum(to_numpy(w) ** 2)) for w in kernels(model))
    assert total > 0
    assert total == pytest.approx(expected, rel=1e-4)
    assert CIFAR10CNN().losses == []


@pytest.mark.parametrize(
    "initializer, std",
    [
        # He: variance 2 / fan_in (Keras truncates the normal and rescales it).
        ("he_normal", math.sqrt(2 / (3 * 3 * 128))),
        # Xavier: uniform on +-sqrt(6 / (fan_in + fan_out)), variance
        # 2 / (fan_in + fan_out).
        ("glorot_uniform", math.sqrt(2 / (3 * 3 * 128 + 3 * 3 * 128))),
    ],
)
def test_kernel_initializer_sets_the_weight_scale(initializer, std):
    model = CIFAR10CNN(kernel_initializer=initializer)
    kernel = to_numpy(model.get_layer("block3_conv2").weights[0])  # (3, 3, 128, 128)
    assert kernel.shape == (3, 3, 128, 128)
    assert kernel.std() == pytest.approx(std, rel=0.03)  # 147,456 samples
    hidden = to_numpy(model.get_layer("fc").kernel)  # (128, 50)
    expected = math.sqrt(2 / 128 if initializer == "he_normal" else 2 / 178)
    assert hidden.std() == pytest.approx(expected, rel=0.15)  # 6,400 samples


@argument_checks
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"flatten": "yes"},
            "Invalid value for argument `flatten`. Expected a boolean. Received: flatten='yes'",
        ),
        (
            {"l2": -1e-4},
            "Invalid value for argument `l2`. Expected None or a strictly positive float. Received: l2=-0.0001",
        ),
        (
            {"l2": True},
            "Invalid value for argument `l2`. Expected None or a strictly positive float. Received: l2=True",
        ),
        (
            {"l2": "1e-4"},
            "Invalid value for argument `l2`. Expected None or a strictly positive float. Received: l2='1e-4'",
        ),
        (
            {"kernel_initializer": "xavier"},
            "Invalid value for argument `kernel_initializer`. Expected the name of a Keras initializer (e.g. 'he_normal', 'glorot_uniform') or an initializer. Received: kernel_initializer='xavier'",
        ),
        (
            {"kernel_initializer": None},
            "Invalid value for argument `kernel_initializer`. Expected the name of a Keras initializer (e.g. 'he_normal', 'glorot_uniform') or an initializer. Received: kernel_initializer=None",
        ),
        (
            {"pooling": "sum"},
            "Invalid value for argument `pooling`. Expected one of (None, 'avg', 'max'). Received: pooling='sum'",
        ),
        (
            {"classes": 0},
            "Invalid value for argument `classes`. Expected a strictly positive integer. Received: classes=0",
        ),
        (
            {"input_shape": (4, 4, 3)},
            "Invalid value for argument `input_shape`. CIFAR10CNN needs a shape (height, width, channels) with sizes of at least 8. Received: input_shape=(4, 4, 3)",
        ),
        (
            {"flatten": True, "input_shape": (None, None, 3)},
            "Invalid value for argument `input_shape`. With flatten=True the dense layers need a fixed image size. Received: input_shape=(None, None, 3)",
        ),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        CIFAR10CNN(**kwargs)


@builders_arithmetic
def test_any_size_without_flatten():
    model = CIFAR10CNN(input_shape=(None, None, 3), classes=3)
    assert model.output_shape == (None, 3)
    assert model.count_params() == expected_params(classes=3)


def test_command_line_smoke(capsys):
    from examples.models import main  # the command that builds a model by name

    model = main(["--model", "cifar10_cnn", "--smoke", "--no-summary"])
    assert model.input_shape == (None, 8, 8, 3)  # --smoke: the smallest size
    params = expected_params(8, classes=model.output_shape[-1])
    assert model.count_params() == params
    out = capsys.readouterr().out
    assert f"cifar10_cnn: {params:,} parameters" in out
    assert "one step: loss" in out


def test_keras_file_round_trip(tmp_path):
    # Any image size, so the file keeps (None, None, 3); L2, so it keeps the
    # regularizers. (The initializers' shapes are those of the tests above:
    # under JAX each new shape costs a compilation.)
    model = CIFAR10CNN(l2=1e-4, input_shape=(None, None, 3))
    rng = np.random.default_rng(0)
    for weight in model.weights:  # BN statistics and scales other than 0 and 1
        if weight.path.endswith(("gamma", "moving_variance")):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
        elif weight.path.endswith(("beta", "moving_mean", "bias")):
            weight.assign(rng.normal(0, 0.1, weight.shape).astype("float32"))
    path = tmp_path / "cifar10_cnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    images = rng.uniform(0, 1, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_array_equal(
        to_numpy(loaded(images, training=False)),
        to_numpy(model(images, training=False)),
    )
    assert loaded.input_shape == (None, None, None, 3)
    assert len(loaded.losses) == 8
    assert loaded.get_layer("fc").kernel_regularizer.get_config() == {"l2": 1e-4}
