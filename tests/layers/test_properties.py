"""Property-based tests over every layer of `keras_blocks.layers`.

Each layer is one `Spec` in `REGISTRY`: a strategy of valid configurations, the
paper's output-shape formula, and a strategy of invalid values per argument.
Adding a layer to the library means adding its entry here; every layer then
gets the same checks: real output shape == `compute_output_shape` == formula,
finite outputs, exact config round trip, `.keras` round trip with
`safe_mode=True` (what a user froze or retuned inside the layer included, in
this process and in a fresh one), integer and boolean images computed as the
same values in floats, a `ValueError` naming the argument for every bad value,
sublayers that start from weights of their own (seeded or not), and a
`CheckpointManager` checkpoint that restores every variable.
"""

import dataclasses
import inspect
import json
import math
import re
import subprocess
import sys
from collections.abc import Callable

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keras_blocks
from keras_blocks import layers
from tests import CHILDREN
from tests.children.frozen_checks import (
    assert_training_leaves_frozen_weights,
    change_every_setting,
    change_settings,
    settings_of,
    sublayers,
)
from tests.layers.layer_checks import ARGUMENT_CHECKS, random_inputs, to_numpy
from tests.layers.state_checks import (
    assert_checkpoint_holds_every_variable,
    correlated_pairs,
)

# Invalid values, by the kind of argument they break.
NOT_INT = st.one_of(st.floats(allow_nan=True), st.text(max_size=3), st.booleans())
NOT_POSITIVE_INT = st.one_of(st.integers(max_value=0), NOT_INT, st.none())
NOT_NON_NEGATIVE_INT = st.one_of(st.integers(max_value=-1), NOT_INT, st.none())
NOT_BOOL = st.one_of(st.integers(), st.text(max_size=3), st.floats())
NOT_RATE = st.one_of(
    st.floats().filter(lambda v: not 0 <= v < 1), st.text(max_size=3), st.none()
)
NOT_FRACTION = st.one_of(
    st.floats().filter(lambda v: not 0 < v <= 1), st.text(max_size=3), st.booleans()
)
NOT_POSITIVE_FLOAT = st.one_of(
    st.floats().filter(lambda v: not 0 < v < math.inf), st.text(max_size=3), st.none()
)
NOT_NON_NEGATIVE_FLOAT = st.one_of(
    st.floats().filter(lambda v: not 0 <= v < math.inf), st.text(max_size=3)
)
NOT_ACTIVATION = st.one_of(
    st.sampled_from(["relu6x", "no_such_activation"]), st.integers()
)
NOT_INITIALIZER = st.sampled_from(["no_such_initializer", 3])


def not_one_of(options, allow_none=False):
    values = st.one_of(st.text(max_size=10), st.integers())
    if not allow_none:
        values = st.one_of(values, st.none())
    return values.filter(lambda v: v not in options)


NOT_DATA_FORMAT = not_one_of(("channels_last", "channels_first"), allow_none=True)
SIZES = st.integers(1, 5)
NOT_KERNEL_SIZE = st.one_of(  # keras.layers.Conv2D's kernel_size: an int or two
    NOT_POSITIVE_INT,
    st.tuples(SIZES),
    st.tuples(SIZES, SIZES, SIZES),
    st.tuples(SIZES, st.integers(max_value=0)),
    st.tuples(NOT_POSITIVE_INT, SIZES),
)


def kernel_sizes(sizes):
    """A kernel size as keras.layers.Conv2D takes it: an int or a pair."""
    one = st.sampled_from(sizes)
    return st.one_of(one, st.tuples(one, one))


def kernel_pair(kernel_size):
    """(height, width) of a kernel size, as keras.layers.Conv2D stores it."""
    if isinstance(kernel_size, int):
        return (kernel_size, kernel_size)
    return tuple(kernel_size)


ACTIVATIONS = st.sampled_from(["relu", "swish", "gelu", None])
COMMON_INVALID = {
    "kernel_initializer": NOT_INITIALIZER,
    "data_format": NOT_DATA_FORMAT,
}


@dataclasses.dataclass(frozen=True)
class Spec:
    """How to test one layer class."""

    cls: type
    # Draws (kwargs, input channels, smallest valid spatial size).
    cases: st.SearchStrategy
    # The paper's formula: (kwargs, height, width, channels) -> output (h, w, c).
    formula: Callable
    # Argument name -> strategy of values that must raise ValueError.
    invalid: dict
    has_data_format: bool = True


def same_size(size, strides):
    return math.ceil(size / strides)


def equal_strides(strides):
    """A stride the same along both axes, as a block that takes an int or a
    pair of equal ints (as keras.layers.Conv2D takes strides) stores it."""
    return strides if isinstance(strides, int) else strides[0]


# ConvBNAct


@st.composite
def conv_bn_act_cases(draw):
    groups = draw(st.sampled_from([1, 2]))
    padding = draw(st.sampled_from(["same", "valid", "symmetric"]))
    kernel_size = draw(kernel_sizes([1, 3, 5] if padding == "symmetric" else [1, 2, 3]))
    kwargs = {
        "filters": groups * draw(st.integers(1, 6)),
        "kernel_size": kernel_size,
        "strides": draw(st.integers(1, 3)),
        "padding": padding,
        "groups": groups,
        "use_bias": draw(st.sampled_from([None, True, False])),
        "batch_norm": draw(st.booleans()),
        "activation": draw(ACTIVATIONS),
    }
    return kwargs, groups * draw(st.integers(1, 4)), max(kernel_pair(kernel_size))


def conv_bn_act_formula(kwargs, height, width, channels):
    (kh, kw), s = kernel_pair(kwargs["kernel_size"]), kwargs["strides"]
    if kwargs["padding"] == "valid":
        return (height - kh) // s + 1, (width - kw) // s + 1, kwargs["filters"]
    return same_size(height, s), same_size(width, s), kwargs["filters"]


# ResidualBlock and BottleneckBlock


@st.composite
def residual_cases(draw, bottleneck):
    strides = draw(st.integers(1, 3))
    shortcuts = ["auto", "projection", "zero_pad", "avg_pool"]
    shortcut = draw(st.sampled_from(shortcuts + ["identity"] * (strides == 1)))
    kwargs = {
        "filters": draw(st.integers(1, 8)),
        "strides": draw(st.sampled_from([strides, (strides, strides)])),
        "preact": draw(st.booleans()),
        "shortcut": shortcut,
        "se_ratio": draw(st.sampled_from([None, 0.25, 1 / 16, 1.0])),
        "drop_path_rate": draw(st.sampled_from([0.0, 0.2])),
        "zero_init_last_bn": draw(st.booleans()),
        "use_bias": draw(st.sampled_from([None, True, False])),
        "activation": draw(st.sampled_from(["relu", "swish"])),
    }
    if bottleneck:
        kwargs["expansion"] = draw(st.integers(1, 4))
        kwargs["groups"] = draw(st.sampled_from([1, 2]))
        kwargs["base_width"] = draw(st.sampled_from([64, 128, 256]))
        kwargs["stride_in_1x1"] = draw(st.booleans())
    out = kwargs["filters"] * kwargs.get("expansion", 1)
    if shortcut == "identity":
        channels = out
    elif shortcut == "zero_pad":
        channels = draw(st.integers(1, out))
    else:
        channels = draw(st.sampled_from([out, draw(st.integers(1, 12))]))
    return kwargs, channels, 1


def residual_formula(kwargs, height, width, channels):
    s = equal_strides(kwargs["strides"])
    return (
        same_size(height, s),
        same_size(width, s),
        kwargs["filters"] * kwargs.get("expansion", 1),
    )


NOT_EQUAL_STRIDES = st.one_of(  # an int or a pair of equal ints, as Conv2D's
    NOT_POSITIVE_INT,
    st.tuples(SIZES, SIZES).filter(lambda pair: pair[0] != pair[1]),
    st.tuples(SIZES),
    st.tuples(SIZES, SIZES, SIZES),
    st.tuples(NOT_POSITIVE_INT, NOT_POSITIVE_INT),
)
RESIDUAL_INVALID = {
    "filters": NOT_POSITIVE_INT,
    "strides": NOT_EQUAL_STRIDES,
    "preact": NOT_BOOL,
    "shortcut": not_one_of(("auto", "identity", "projection", "zero_pad", "avg_pool")),
    "se_ratio": NOT_FRACTION,
    "drop_path_rate": NOT_RATE,
    "zero_init_last_bn": NOT_BOOL,
    "use_bias": NOT_BOOL,
    "activation": NOT_ACTIVATION,
    "bn_momentum": NOT_RATE,
    "bn_epsilon": NOT_POSITIVE_FLOAT,
    **COMMON_INVALID,
}


# MBConvBlock


@st.composite
def mb_conv_cases(draw):
    fused = draw(st.booleans())
    kwargs = {
        "filters": draw(st.integers(1, 8)),
        "kernel_size": draw(kernel_sizes([1, 3, 5])),
        "strides": draw(st.integers(1, 3)),
        "padding": draw(st.sampled_from(["same", "symmetric"])),
        "expand_ratio": draw(st.integers(1, 4)),
        "se_ratio": draw(st.sampled_from([None, 0.25, 1.0])),
        "fused": fused,
        "skip": draw(st.booleans()),
        "drop_path_rate": draw(st.sampled_from([0.0, 0.2])),
        "use_bias": draw(st.sampled_from([None, True, False])),
        "activation": draw(ACTIVATIONS),
    }
    channels = draw(st.sampled_from([kwargs["filters"], draw(st.integers(1, 8))]))
    return kwargs, channels, 1


# InceptionModule


@st.composite
def inception_cases(draw):
    naive = draw(st.booleans())
    filters = st.integers(1, 6)
    reduction = st.none() if naive else filters
    kwargs = {
        "filters_1x1": draw(filters),
        "filters_3x3_reduce": draw(reduction),
        "filters_3x3": draw(filters),
        "filters_5x5_reduce": draw(reduction),
        "filters_5x5": draw(filters),
        "filters_pool_proj": draw(reduction),
        "kernel_size_5x5": draw(kernel_sizes([1, 3, 5])),
        "naive": naive,
        "batch_norm": draw(st.booleans()),
        "activation": draw(ACTIVATIONS),
    }
    return kwargs, draw(st.integers(1, 8)), 1


def inception_formula(kwargs, height, width, channels):
    pool = channels if kwargs["naive"] else kwargs["filters_pool_proj"]
    total = kwargs["filters_1x1"] + kwargs["filters_3x3"] + kwargs["filters_5x5"]
    return height, width, total + pool


# SqueezeExcite, LocalResponseNormalization, DropPath, Normalization


@st.composite
def squeeze_excite_cases(draw):
    kwargs = {
        "ratio": draw(st.floats(0.01, 1.0)),
        "squeeze_channels": draw(st.one_of(st.none(), st.integers(1, 4))),
        "activation": draw(ACTIVATIONS),
        "gate_activation": draw(st.sampled_from(["sigmoid", "hard_sigmoid"])),
    }
    return kwargs, draw(st.integers(1, 12)), 1


@st.composite
def lrn_cases(draw):
    kwargs = {
        "depth_radius": draw(st.integers(0, 5)),
        "bias": draw(st.floats(0.5, 3.0)),
        "alpha": draw(st.floats(0.0, 1e-2)),
        "beta": draw(st.floats(0.0, 1.0)),
    }
    return kwargs, draw(st.integers(1, 12)), 1


@st.composite
def drop_path_cases(draw):
    kwargs = {
        "rate": draw(st.floats(0.0, 0.9)),
        "seed": draw(st.one_of(st.none(), st.integers(0, 2**16))),
    }
    return kwargs, draw(st.integers(1, 8)), 1


@st.composite
def dropout_cases(draw):
    kwargs = {
        "rate": draw(st.floats(0.0, 1.0)),
        "seed": draw(st.one_of(st.none(), st.integers(0, 2**16))),
    }
    return kwargs, draw(st.integers(1, 8)), 1


@st.composite
def normalization_cases(draw):
    kwargs = {"axis": draw(st.sampled_from([(-1,), (3,), (1, 3), ()]))}
    if draw(st.booleans()):  # fixed statistics: Keras' layer unchanged
        kwargs["mean"] = draw(st.floats(-2.0, 2.0))
        kwargs["variance"] = draw(st.floats(0.5, 4.0))
        kwargs["invert"] = draw(st.booleans())
    return kwargs, draw(st.integers(1, 8)), 1


# PCAColorAugmentation: given statistics, since one that is not adapted
# refuses to run in training; its inputs are RGB.

UNIT_FLOATS = st.floats(-1.0, 1.0)


@st.composite
def pca_color_augmentation_cases(draw):
    kwargs = {
        "eigenvalues": draw(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3)),
        "eigenvectors": draw(
            st.lists(
                st.lists(UNIT_FLOATS, min_size=3, max_size=3), min_size=3, max_size=3
            )
        ),
        "alpha_std": draw(st.floats(0.0, 1.0)),
        "seed": draw(st.one_of(st.none(), st.integers(0, 2**16))),
    }
    return kwargs, 3, 1


NOT_EIGENVALUES = st.one_of(
    st.lists(st.floats(0.0, 1.0), max_size=5).filter(lambda v: len(v) != 3),
    st.tuples(st.floats(max_value=-1e-6), st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    st.tuples(
        st.sampled_from([math.nan, math.inf, "1", True]), UNIT_FLOATS, UNIT_FLOATS
    ),
    st.text(max_size=3),
    st.none(),
)
NOT_EIGENVECTORS = st.one_of(
    st.lists(UNIT_FLOATS, min_size=3, max_size=3),
    st.lists(st.lists(UNIT_FLOATS, min_size=2, max_size=2), min_size=3, max_size=3),
    st.lists(st.lists(UNIT_FLOATS, min_size=3, max_size=3), min_size=2, max_size=2),
    st.just([[1.0, 0.0, 0.0], [0.0, math.nan, 0.0], [0.0, 0.0, 1.0]]),
    st.text(max_size=3),
    st.none(),
)


def unchanged(kwargs, height, width, channels):
    return height, width, channels


# ImagePreprocessing: RGB images, pixels in [0, 255] (any values compute).

IMAGE_PREPROCESSING_MODES = ("torch", "caffe", "tf", "unit")


@st.composite
def image_preprocessing_cases(draw):
    return {"mode": draw(st.sampled_from(IMAGE_PREPROCESSING_MODES))}, 3, 1


REGISTRY = {
    "ConvBNAct": Spec(
        layers.ConvBNAct,
        conv_bn_act_cases(),
        conv_bn_act_formula,
        {
            "filters": NOT_POSITIVE_INT,
            "kernel_size": NOT_KERNEL_SIZE,
            "strides": NOT_POSITIVE_INT,
            "padding": not_one_of(("same", "valid", "symmetric")),
            "groups": NOT_POSITIVE_INT,
            "use_bias": NOT_BOOL,
            "batch_norm": NOT_BOOL,
            "activation": NOT_ACTIVATION,
            "bn_momentum": NOT_RATE,
            "bn_epsilon": NOT_POSITIVE_FLOAT,
            **COMMON_INVALID,
        },
    ),
    "ResidualBlock": Spec(
        layers.ResidualBlock, residual_cases(False), residual_formula, RESIDUAL_INVALID
    ),
    "BottleneckBlock": Spec(
        layers.BottleneckBlock,
        residual_cases(True),
        residual_formula,
        {
            **RESIDUAL_INVALID,
            "expansion": NOT_POSITIVE_INT,
            "groups": NOT_POSITIVE_INT,
            "base_width": NOT_POSITIVE_INT,
            "stride_in_1x1": NOT_BOOL,
        },
    ),
    "MBConvBlock": Spec(
        layers.MBConvBlock,
        mb_conv_cases(),
        residual_formula,
        {
            "filters": NOT_POSITIVE_INT,
            "kernel_size": NOT_KERNEL_SIZE,
            "strides": NOT_POSITIVE_INT,
            "padding": not_one_of(("same", "symmetric")),
            "expand_ratio": NOT_POSITIVE_INT,
            "se_ratio": NOT_FRACTION,
            "fused": NOT_BOOL,
            "skip": NOT_BOOL,
            "drop_path_rate": NOT_RATE,
            "use_bias": NOT_BOOL,
            "activation": NOT_ACTIVATION,
            "bn_momentum": NOT_RATE,
            "bn_epsilon": NOT_POSITIVE_FLOAT,
            **COMMON_INVALID,
        },
    ),
    "InceptionModule": Spec(
        layers.InceptionModule,
        inception_cases(),
        inception_formula,
        {
            "filters_1x1": NOT_POSITIVE_INT,
            "filters_3x3": NOT_POSITIVE_INT,
            "filters_5x5": NOT_POSITIVE_INT,
            # Odd only: "same" padding stays symmetric at stride 1.
            "kernel_size_5x5": st.one_of(
                NOT_KERNEL_SIZE, st.sampled_from([2, 4, (3, 2), (2, 5)])
            ),
            "naive": NOT_BOOL,
            "batch_norm": NOT_BOOL,
            "activation": NOT_ACTIVATION,
            "bn_epsilon": NOT_POSITIVE_FLOAT,
            **COMMON_INVALID,
        },
    ),
    "SqueezeExcite": Spec(
        layers.SqueezeExcite,
        squeeze_excite_cases(),
        unchanged,
        {
            "ratio": NOT_FRACTION,
            "squeeze_channels": st.one_of(st.integers(max_value=0), NOT_INT),
            "activation": NOT_ACTIVATION,
            "gate_activation": NOT_ACTIVATION,
            **COMMON_INVALID,
        },
    ),
    "LocalResponseNormalization": Spec(
        layers.LocalResponseNormalization,
        lrn_cases(),
        unchanged,
        {
            "depth_radius": NOT_NON_NEGATIVE_INT,
            "bias": NOT_POSITIVE_FLOAT,
            "alpha": NOT_NON_NEGATIVE_FLOAT,
            "beta": NOT_NON_NEGATIVE_FLOAT,
            "data_format": NOT_DATA_FORMAT,
        },
    ),
    "DropPath": Spec(
        layers.DropPath,
        drop_path_cases(),
        unchanged,
        {"rate": NOT_RATE, "seed": st.one_of(st.integers(max_value=-1), NOT_INT)},
        has_data_format=False,
    ),
    "Dropout": Spec(
        layers.Dropout,
        dropout_cases(),
        unchanged,
        {
            "rate": st.one_of(
                st.floats().filter(lambda v: not 0 <= v <= 1),
                st.text(max_size=3),
                st.none(),
            ),
            "seed": st.one_of(st.integers(max_value=-1), NOT_INT),
        },
        has_data_format=False,
    ),
    "PCAColorAugmentation": Spec(
        layers.PCAColorAugmentation,
        pca_color_augmentation_cases(),
        unchanged,
        {
            "eigenvalues": NOT_EIGENVALUES,
            "eigenvectors": NOT_EIGENVECTORS,
            "alpha_std": NOT_NON_NEGATIVE_FLOAT,
            "seed": st.one_of(st.integers(max_value=-1), NOT_INT),
            "data_format": NOT_DATA_FORMAT,
        },
    ),
    "ImagePreprocessing": Spec(
        layers.ImagePreprocessing,
        image_preprocessing_cases(),
        unchanged,
        {
            "mode": not_one_of(IMAGE_PREPROCESSING_MODES),
            "data_format": NOT_DATA_FORMAT,
        },
    ),
    "Normalization": Spec(
        layers.Normalization,
        normalization_cases(),
        unchanged,
        {
            "axis": st.one_of(st.text(max_size=3), st.floats(), st.just((1.5,))),
            "invert": st.one_of(st.integers(), st.none(), st.text(max_size=3)),
        },
        has_data_format=False,
    ),
}

NAMES = sorted(REGISTRY)


def examples(n):
    """`n` examples under CI's and the dev profile (10 by default), at most
    the profile's count under a smaller one: the quick tier's runs 3."""
    limit = settings.default.max_examples
    return n if limit >= 10 else min(n, limit)


# JAX compiles every operation anew for each new shape (1-2 s per block example
# on two CPU cores), so it runs fewer examples of the compute-heavy properties;
# TensorFlow and PyTorch explore more configurations of the same properties.
_JAX = keras.config.backend() == "jax"
COMPUTE_EXAMPLES = examples(5 if _JAX else 20)
SAVE_EXAMPLES = examples(2 if _JAX else 5)

# The blocks: seconds an example on every backend (a compile a shape on JAX),
# so their compute-heavy properties are left out of the quick tier, which
# checks each property on the layers that run in milliseconds.
BLOCKS = {
    "BottleneckBlock",
    "ConvBNAct",
    "InceptionModule",
    "MBConvBlock",
    "ResidualBlock",
}


def by_cost(names):
    """`names` as parameters, the blocks marked slow."""
    return [
        pytest.param(name, marks=pytest.mark.slow) if name in BLOCKS else name
        for name in names
    ]


@pytest.mark.backend_independent(reason="names in the package and the registry")
def test_registry_covers_every_layer():
    assert sorted(layers.__all__) == NAMES
    assert keras_blocks.layers is layers


@st.composite
def configurations(draw, spec):
    """(kwargs, input_shape, expected_output_shape) for one valid example."""
    kwargs, channels, min_size = draw(spec.cases)
    kwargs = dict(kwargs)
    height, width = draw(st.integers(min_size, 12)), draw(st.integers(min_size, 12))
    batch = draw(st.integers(1, 3))
    out_height, out_width, out_channels = spec.formula(kwargs, height, width, channels)
    data_format = "channels_last"
    if spec.has_data_format:
        data_format = draw(st.sampled_from(["channels_last", "channels_first"]))
        kwargs["data_format"] = data_format
    if data_format == "channels_last":
        shapes = (
            (batch, height, width, channels),
            (batch, out_height, out_width, out_channels),
        )
    else:
        shapes = (
            (batch, channels, height, width),
            (batch, out_channels, out_height, out_width),
        )
    return (kwargs, *shapes)


# The layers that take 4D images of one channel count once built, which their
# `build` sets as their `input_spec`.
IMAGE_LAYERS = (
    "BottleneckBlock",
    "ConvBNAct",
    "ImagePreprocessing",
    "InceptionModule",
    "LocalResponseNormalization",
    "MBConvBlock",
    "ResidualBlock",
    "SqueezeExcite",
)

# Integer image dtypes and the values drawn for each.
INTEGER_IMAGES = {"uint8": (0, 256), "int32": (-5, 6), "bool": (0, 2)}


def built(spec, kwargs, input_shape):
    """A functional model around one layer."""
    inputs = keras.Input(input_shape[1:])
    return keras.Model(inputs, spec.cls(**kwargs)(inputs))


@pytest.mark.parametrize("name", by_cost(NAMES))
@settings(max_examples=COMPUTE_EXAMPLES)
@given(data=st.data())
def test_outputs_initial_weights_and_integer_images(name, data):
    # Three properties of one layer, built by its first call, checked on each
    # example: under JAX an example compiles every operation of the layer
    # anew, and the initial weights and the integer images (a cast, then the
    # same operations on the same shape) then cost no compile of their own.
    spec = REGISTRY[name]
    kwargs, input_shape, expected = data.draw(configurations(spec))
    layer = spec.cls(**kwargs)
    assert tuple(layer.compute_output_shape(input_shape)) == expected
    seed = data.draw(st.integers(0, 2**16))
    x = random_inputs(input_shape, seed=seed)
    for training in (False, True):
        y = to_numpy(layer(x, training=training))
        assert y.shape == expected
        assert np.isfinite(y).all()
        if not training:
            # Sublayers start from weights of their own (checked before a
            # training call moves the BN statistics).
            assert correlated_pairs(layer.weights) == []
    if name in IMAGE_LAYERS:  # set in build: Keras' own error on other inputs
        axis = -1 if kwargs["data_format"] == "channels_last" else 1
        spec_of_inputs = (layer.input_spec.ndim, layer.input_spec.axes)
        assert spec_of_inputs == (4, {axis: input_shape[axis]})
    # The symbolic path agrees, with an unknown batch size.
    symbolic = layer(keras.Input(input_shape[1:]))
    assert tuple(symbolic.shape) == (None, *expected[1:])

    # Decoded images are uint8: every layer computes on them as on the same
    # values in floats, as Keras' Dense, BatchNormalization and preprocessing
    # layers do on every backend (Keras' Conv2D casts them on JAX only, and
    # fails on TensorFlow and PyTorch).
    rng = np.random.default_rng(seed)
    for dtype, (low, high) in INTEGER_IMAGES.items():
        x = rng.integers(low, high, input_shape).astype(dtype)
        expected = to_numpy(layer(x.astype("float32"), training=False))
        scale = max(1.0, float(np.abs(expected).max()))
        for training in (False, True):
            y = layer(x, training=training)
            assert keras.backend.standardize_dtype(y.dtype) == layer.compute_dtype
            if not training:
                np.testing.assert_allclose(
                    to_numpy(y), expected, atol=1e-6 * scale, err_msg=dtype
                )
            assert np.isfinite(to_numpy(y)).all(), dtype
        symbolic = layer(keras.Input(input_shape[1:], dtype=dtype))
        assert keras.backend.standardize_dtype(symbolic.dtype) == layer.compute_dtype


@pytest.mark.backend_independent(reason="configs are Python values; no weights")
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=examples(30))
@given(data=st.data())
def test_config_round_trip(name, data):
    spec = REGISTRY[name]
    kwargs, _, _ = data.draw(configurations(spec))
    layer = spec.cls(**kwargs)
    config = layer.get_config()
    assert spec.cls.from_config(config).get_config() == config
    for key, value in kwargs.items():
        if key in ("activation", "gate_activation"):
            continue  # Stored serialized ("swish" reads back as "silu").
        if key in ("kernel_size", "kernel_size_5x5"):  # a pair, as Conv2D's
            value = kernel_pair(value)
        if key == "strides":
            value = equal_strides(value)
        assert config[key] == value, key


@pytest.mark.parametrize("name", by_cost(NAMES))
@settings(max_examples=SAVE_EXAMPLES)
@given(data=st.data())
def test_keras_file_and_checkpoint_round_trips(name, data, tmp_path_factory):
    spec = REGISTRY[name]
    kwargs, input_shape, _ = data.draw(configurations(spec))
    model = built(spec, kwargs, input_shape)
    path = tmp_path_factory.mktemp(name) / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.layers[-1].get_config() == model.layers[-1].get_config()
    x = random_inputs(input_shape)
    np.testing.assert_allclose(
        to_numpy(loaded(x, training=False)),
        to_numpy(model(x, training=False)),
        atol=1e-6,
    )
    # The same model, saved by CheckpointManager and restored into a new one:
    # every variable comes back.
    assert_checkpoint_holds_every_variable(
        lambda: built(spec, kwargs, input_shape),
        tmp_path_factory.mktemp(f"{name}_checkpoint"),
        saved=model,
    )


def headed(spec, kwargs, input_shape):
    """One layer with a small trainable head: a model that always has weights
    to train, whatever is frozen in the layer."""
    inputs = keras.Input(input_shape[1:])
    x = spec.cls(**kwargs)(inputs)
    data_format = kwargs.get("data_format", "channels_last")
    x = keras.layers.GlobalAveragePooling2D(data_format=data_format)(x)
    return keras.Model(inputs, keras.layers.Dense(1)(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=SAVE_EXAMPLES)
@given(data=st.data())
def test_frozen_parts_and_bn_settings_survive_a_keras_file(
    name, data, tmp_path_factory
):
    # A fine-tuning run saved and reloaded: what the user froze (the layer, or
    # some of its nested layers) stays frozen, and the batch normalizations'
    # momentum and epsilon and the drop-path rates stay as the user set them.
    spec = REGISTRY[name]
    # At least 2 in each dimension: see test_exports_with_equal_outputs (oneDNN
    # aborted a one-channel SqueezeExcite's training step the same way).
    kwargs, input_shape, _ = data.draw(
        configurations(spec).filter(lambda case: min(case[1][1:]) > 1)
    )
    model = headed(spec, kwargs, input_shape)
    change_settings(model.layers[1], data.draw, st)
    path = tmp_path_factory.mktemp(name) / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert settings_of(loaded) == settings_of(model)
    assert loaded.layers[1].get_config() == model.layers[1].get_config()
    assert_training_leaves_frozen_weights(
        loaded, random_inputs(input_shape), np.ones((input_shape[0], 1))
    )


@pytest.mark.slow
@pytest.mark.backend_independent(
    reason="what a process that imported only keras_blocks can load; the "
    "settings' round trip runs on every backend in "
    "test_frozen_parts_and_bn_settings_survive_a_keras_file"
)
@settings(max_examples=1, derandomize=True)
@given(data=st.data())
def test_frozen_parts_survive_a_keras_file_in_a_new_process(data, tmp_path_factory):
    # Loaded where nothing but `import keras_blocks` ran: every layer of the
    # registry, in one child process.
    folder = tmp_path_factory.mktemp("frozen")
    expected = {}
    for name in NAMES:
        spec = REGISTRY[name]
        kwargs, input_shape, _ = data.draw(configurations(spec))
        model = headed(spec, kwargs, input_shape)
        change_every_setting(model.layers[1])
        path = str(folder / f"{name}.keras")
        model.save(path)
        expected[path] = settings_of(model)
    result = subprocess.run(
        [sys.executable, str(CHILDREN / "frozen_checks.py"), *expected],
        capture_output=True,
        text=True,
        timeout=600,  # generous: 80-95 s on a loaded two-core machine
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == expected


@pytest.mark.slow
def test_a_frozen_backbone_survives_a_keras_file(tmp_path):
    # As examples/transfer_learning.py fine-tunes: the backbone's top stage
    # trains, the rest is frozen, and batch normalization everywhere.
    inputs = keras.Input((8, 8, 3))
    x = layers.ConvBNAct(4, name="stem")(inputs)
    x = layers.ResidualBlock(4, name="conv2_block1")(x)
    x = layers.MBConvBlock(4, se_ratio=0.25, name="conv3_block1")(x)
    x = layers.BottleneckBlock(2, expansion=2, name="conv4_block1")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    backbone = keras.Model(inputs, x, name="backbone")
    images = keras.Input((8, 8, 3))
    model = keras.Model(images, keras.layers.Dense(2)(backbone(images)))
    for layer in backbone.layers:
        if layer.weights:  # as the example's stages()
            layer.trainable = layer.name == "conv4_block1"
    for _, layer in sublayers(backbone):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    trainable = settings_of(model)["trainable_weights"]
    assert len(trainable) == 2 + 3  # the head; conv4's three convolutions
    model.compile("sgd", "mse")  # the file holds the optimizer too
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert settings_of(loaded) == settings_of(model)
    assert_training_leaves_frozen_weights(
        loaded, random_inputs((2, 8, 8, 3)), np.ones((2, 2))
    )


@ARGUMENT_CHECKS
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=examples(40))
@given(data=st.data())
def test_invalid_argument_raises_naming_it(name, data):
    spec = REGISTRY[name]
    kwargs, _, _ = data.draw(configurations(spec))
    argument = data.draw(st.sampled_from(sorted(spec.invalid)))
    value = data.draw(spec.invalid[argument])
    kwargs[argument] = value
    message = (
        re.escape(f"argument `{argument}`") + ".*" + re.escape(f"Received: {argument}=")
    )
    with pytest.raises(ValueError, match=message):
        spec.cls(**kwargs)


# Seeded initializers. (Unseeded ones are checked with the outputs, in
# test_outputs_initial_weights_and_integer_images; checkpoints with the .keras
# file, in test_keras_file_and_checkpoint_round_trips.)

INITIALIZER_LAYERS = [
    name
    for name in NAMES
    if "kernel_initializer" in inspect.signature(REGISTRY[name].cls).parameters
]


@pytest.mark.parametrize("name", by_cost(INITIALIZER_LAYERS))
@settings(max_examples=COMPUTE_EXAMPLES)
@given(data=st.data())
def test_a_seeded_initializer_gives_reproducible_distinct_sublayers(name, data):
    spec = REGISTRY[name]
    kwargs, input_shape, _ = data.draw(configurations(spec))
    seed = data.draw(st.integers(0, 2**16))
    kind = data.draw(st.sampled_from(["HeNormal", "GlorotUniform", "RandomNormal"]))

    def seeded():
        keras.utils.set_random_seed(data.draw(st.integers(0, 2**16)))
        initializer = getattr(keras.initializers, kind)(seed=seed)
        return built(spec, {**kwargs, "kernel_initializer": initializer}, input_shape)

    first, second = seeded(), seeded()
    for a, b in zip(first.weights, second.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=a.path)
    assert correlated_pairs(first.weights) == []


# What Keras 3.15 exports from each backend, with the export extra (ONNX from
# JAX goes through jax2onnx, which the extra does not install).
EXPORTS = {
    "tensorflow": ("tf_saved_model", "litert", "onnx"),
    "torch": ("onnx",),
}.get(keras.config.backend(), ())
EXPORT_NAMES = {
    "tf_saved_model": "model",
    "litert": "model.tflite",
    "onnx": "model.onnx",
}


@pytest.mark.backends(
    "tensorflow", "torch", reason="Keras exports ONNX from JAX via jax2onnx"
)
@pytest.mark.parametrize("name", NAMES)
# A few seconds an export: one configuration a layer, the same in every run.
@pytest.mark.slow
@settings(max_examples=1, derandomize=True)
@given(data=st.data())
def test_exports_with_equal_outputs(name, data, tmp_path_factory):
    # SavedModel, LiteRT and ONNX, each run by its own runtime, compute what
    # Keras computes: every layer, either data format (grouped convolutions
    # included, which Keras' own Conv2D cannot export to ONNX from TensorFlow).
    pytest.importorskip("onnxruntime")  # the export extra
    from keras_blocks.deploy import ExportedModel, export_model

    spec = REGISTRY[name]
    # At least 2 in each dimension: TensorFlow's oneDNN kernels now and then abort a
    # loaded SavedModel's fused 1x1 convolution of one channel ("could not
    # create a primitive descriptor for the reorder primitive": 3 of about 40
    # runs of a one-channel SqueezeExcite, never on a rerun of the same
    # example), whatever exported it.
    kwargs, input_shape, _ = data.draw(
        configurations(spec).filter(lambda case: min(case[1][1:]) > 1)
    )
    model = built(spec, kwargs, input_shape)
    rng = np.random.default_rng(0)
    for weight in model.weights:  # fresh BN statistics would hide their math
        if weight.path.endswith(("moving_variance", "gamma")):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
        elif weight.path.endswith(("moving_mean", "beta")):
            weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))
    x = random_inputs(input_shape)
    expected = to_numpy(model(x, training=False))
    folder = tmp_path_factory.mktemp(f"{name}_export")
    for format in EXPORTS:
        exported = ExportedModel(
            export_model(model, folder / EXPORT_NAMES[format], format)
        )
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(
            exported(x), expected, atol=1e-5 * scale, rtol=0, err_msg=format
        )
