"""EfficientNetV2 (keras_blocks/models/efficientnet_v2.py): parameter counts
and weights equal to keras.applications' EfficientNetV2B0 ... L, its
preprocessing, torchvision's layout, the registry's entries and bad input.

tests/porting/test_pretrained_efficientnet_v2.py compares the torchvision
layout with torchvision's networks."""

import re

import keras
import numpy as np
import pytest

from keras_blocks import efficientnet
from keras_blocks.layers import ConvBNAct, MBConvBlock
from keras_blocks.models import (
    backbone,
    efficientnet_v2,
    family,
    get_model,
    model_entry,
    pyramid_layers,
)
from keras_blocks.models.efficientnet_v2 import (
    B0_BLOCKS,
    PRESETS,
    EfficientNetV2,
    round_filters,
    scaled_table,
)
from tests.layers.layer_checks import to_numpy
from tests.models.model_checks import (
    argument_checks,
    assert_same_predictions,
    assert_same_weight_shapes,
    builders_arithmetic,
    kernels,
    randomize,
    same_blocks_as,
)

# Total parameters of keras.applications.EfficientNetV2B0 ... L (1000
# classes), with or without its preprocessing, which has no weights.
KERAS_APPLICATIONS_PARAMS = {
    "b0": 7_200_312,
    "b1": 8_212_124,
    "b2": 10_178_374,
    "b3": 14_467_622,
    "s": 21_612_360,
    "m": 54_431_388,
    "l": 119_027_848,
}
# keras.applications pads its strided convolutions "same" too; at 57x71 the
# four strided layers of B0 see both parities: heights 57, 29, 15, 8 and
# widths 71, 36, 18, 9.
SIZE = (57, 71)
arithmetic = pytest.mark.backend_independent(reason="Python arithmetic, before Keras")


def pixels(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


def application(variant):
    return getattr(keras.applications, f"EfficientNetV2{variant.upper()}")


def applications_pair(variant, size):
    """keras.applications' `variant` with random weights, and ours with
    them (set_weights), both with their preprocessing and returning logits."""
    kwargs = dict(input_shape=(*size, 3), classifier_activation=None)
    with kernels("drawn", seed=0):
        theirs = application(variant)(weights=None, **kwargs)
    randomize(theirs)
    # Small projection gammas (timm's zero_init_last, almost): with gammas
    # near 1, S's 40 residual branches grew its activations to 2e5 and the
    # round-off with them (2e-7 of the scale at block4a, half of it at the
    # top); with these they stay near 1 and differ by 1e-7 of the logits.
    rng = np.random.default_rng(1)
    for weight in theirs.weights:
        if weight.path.endswith("project_bn/gamma"):
            weight.assign(rng.uniform(0.05, 0.15, weight.shape).astype("float32"))
    with kernels("zeros"):  # every weight is set below
        ours = EfficientNetV2(variant, **kwargs)
    assert_same_weight_shapes(ours, theirs)
    ours.set_weights(theirs.get_weights())
    return theirs, ours


# Widths and depths.


@arithmetic
def test_widths_round_without_the_ten_percent_rule():
    # keras.applications' V2: 16 * 1.2 = 19.2 -> 16, where EfficientNet's
    # rounding adds one more divisor (16 < 0.9 * 19.2): 24.
    assert round_filters(16, 1.2) == 16
    assert efficientnet.round_filters(16, 1.2) == 24
    b3 = scaled_table(B0_BLOCKS, 1.2, 1.4)
    assert [s.filters_out for s in b3] == [16, 40, 56, 112, 136, 232]
    assert [s.repeats for s in b3] == [2, 3, 3, 5, 7, 12]
    assert scaled_table(B0_BLOCKS, 1.0, 1.0) == B0_BLOCKS


@builders_arithmetic
@pytest.mark.parametrize(
    "variant",
    [v if v == "b0" else pytest.param(v, marks=pytest.mark.slow) for v in PRESETS],
)
def test_parameter_count_equals_keras_applications(variant):
    # Ours at its default size; keras.applications' at 32x32, the smallest
    # it takes (no weight depends on the size), with zero kernels: ~15 s for
    # its L under PyTorch.
    with kernels("zeros"):
        ours = EfficientNetV2(variant)
        theirs = application(variant)(weights=None, input_shape=(32, 32, 3))
    assert ours.count_params() == KERAS_APPLICATIONS_PARAMS[variant]
    assert theirs.count_params() == KERAS_APPLICATIONS_PARAMS[variant]
    assert_same_weight_shapes(ours, theirs)
    assert ours.name == theirs.name == f"efficientnetv2-{variant}"
    size = PRESETS[variant].resolution
    assert ours.input_shape == (None, size, size, 3)
    assert ours.get_layer("top_dropout").rate == 0.2


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant, size",
    [
        ("b0", SIZE),
        # S: a wider table of the same blocks, with keras.applications'
        # other preprocessing (x / 128 - 1) and fused blocks of expansion 1
        # with a residual (B0's single one changes the width).
        pytest.param("s", (64, 64), marks=same_blocks_as("B0")),
    ],
)
def test_keras_applications_weights_give_same_outputs(variant, size):
    theirs, ours = applications_pair(variant, size)
    # The same stochastic depth ramp (keras.applications' per-sample Dropout;
    # B1-B3 differ: keras.applications divides by the unscaled block count).
    drop_rates = {
        layer.name.removesuffix("_drop"): layer.rate
        for layer in theirs.layers
        if layer.name.endswith("_drop")
    }
    assert drop_rates == {
        layer.name: layer.drop_path_rate
        for layer in ours.layers
        if isinstance(layer, MBConvBlock) and layer.drop_path is not None
    }
    x = pixels((2, *size, 3))
    logits = assert_same_predictions(ours, theirs, x)
    assert logits.std() > 1e-3  # a real comparison, not of constant outputs


@pytest.mark.parametrize(
    "variant, layout, channels, expected",
    [
        ("b0", "keras_applications", 3, "imagenet"),
        ("b0", "keras_applications", 1, "signed"),  # as keras.applications
        ("b0", "torchvision", 3, "imagenet"),
    ],
)
def test_preprocessing(variant, layout, channels, expected):
    with kernels("zeros"):
        model = EfficientNetV2(
            variant,
            layout=layout,
            include_top=False,
            input_shape=(32, 32, channels),
        )
    assert not model.get_layer("normalization").weights
    x = pixels((1, 32, 32, channels))
    if expected == "imagenet":
        mean = np.array([0.485, 0.456, 0.406])
        std = np.array([0.229, 0.224, 0.225])
        wanted = (x / 255.0 - mean) / std
    else:
        wanted = x / 128.0 - 1.0
    got = to_numpy(model.get_layer("normalization")(x))
    np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-5)


@builders_arithmetic
def test_torchvision_layout():
    # torchvision's padding and head dropout; the same weights and batch
    # normalization as keras.applications' layout.
    def units(model):
        return {
            (u.padding, u.bn_momentum, u.bn_epsilon)
            for u in model.layers
            if isinstance(u, ConvBNAct | MBConvBlock)
        }

    with kernels("zeros"):
        default = EfficientNetV2("s", input_shape=(32, 32, 3))
        torch_layout = EfficientNetV2(
            "s", layout="torchvision", input_shape=(32, 32, 3)
        )
    assert_same_weight_shapes(torch_layout, default)
    assert units(default) == {("same", 0.9, 1e-3)}
    assert units(torch_layout) == {("symmetric", 0.9, 1e-3)}
    assert torch_layout.get_layer("top_dropout").rate == 0.2
    # S's first stage: single fused convolutions, with their residuals.
    block = torch_layout.get_layer("block1b")
    assert (block.fused, block.expand, block.se, block.has_skip) == (
        True,
        None,
        None,
        True,
    )


@builders_arithmetic
def test_get_model_and_the_registry():
    entry = model_entry("efficientnet_v2_s")
    assert (entry.family, entry.min_size, entry.default_size) == (
        "efficientnet_v2",
        32,
        384,
    )
    assert entry.layouts == ("keras_applications", "torchvision")
    assert sorted(entry.weights) == ["keras_applications", "torchvision"]
    assert entry.weights["keras_applications"].file == "efficientnetv2-s.h5"
    assert "torchvision" not in model_entry("efficientnet_v2_b0").weights
    with kernels("zeros"):
        model = get_model("efficientnet_v2_b0", input_shape=(64, 64, 3), classes=10)
        raw = get_model(
            "efficientnet_v2_b0", input_shape=(64, 64, 3), include_preprocessing=True
        )
    assert model.name == "efficientnet_v2_b0"
    assert model.output_shape == (None, 10)
    assert not any(layer.name == "normalization" for layer in model.layers)
    assert type(raw.get_layer("normalization")) is keras.layers.Normalization
    assert raw.count_params() == KERAS_APPLICATIONS_PARAMS["b0"]


@builders_arithmetic
def test_backbone_levels_and_family():
    with kernels("zeros"):
        v2 = get_model("efficientnet_v2_b0", input_shape=(64, 64, 3))
        v1 = get_model("efficientnet_b0", input_shape=(64, 64, 3))
    # The two families share layer names and classes; V2's fused block1a
    # tells them apart.
    assert family(v2) == "efficientnet_v2"
    assert family(v1) == "efficientnet"
    assert pyramid_layers(v2) == {
        "P2": "block2b",
        "P3": "block3b",
        "P4": "block5e",
        "P5": "block6h",
    }
    features = backbone(v2)
    shapes = {level: tuple(x.shape[1:]) for level, x in features.output.items()}
    assert shapes == {
        "P2": (16, 16, 32),
        "P3": (8, 8, 48),
        "P4": (4, 4, 112),
        "P5": (2, 2, 192),
    }


# Bad input.


@argument_checks
@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (
            ("xl",),
            {},
            "Invalid value for argument `variant`. Expected one of ('b0', 'b1', "
            "'b2', 'b3', 's', 'm', 'l'). Received: variant='xl'",
        ),
        (
            ("b0",),
            dict(layout="timm"),
            "Invalid value for argument `layout`. Expected one of "
            "('keras_applications', 'torchvision'). Received: layout='timm'",
        ),
        (
            ("b0",),
            dict(input_normalization=(0.5, 0)),
            "Invalid value for argument `input_normalization`. Expected a pair "
            "(mean, stddev) of finite numbers or per-channel sequences, "
            "stddev > 0. Received: input_normalization=(0.5, 0)",
        ),
        (
            ("b0",),
            dict(input_normalization=((1, 2), 3)),
            "Invalid value for argument `input_normalization`. Expected a number "
            "or 3 values (one per channel) for the mean and for the stddev. "
            "Received: input_normalization=((1.0, 2.0), 3.0)",
        ),
    ],
)
def test_bad_args(args, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        EfficientNetV2(*args, **kwargs)


@argument_checks
def test_the_table_is_not_an_argument():
    with pytest.raises(TypeError, match="blocks"):
        EfficientNetV2("b0", blocks=B0_BLOCKS)
    assert efficientnet_v2.MODELS["efficientnet_v2_l"].keywords == {
        "include_preprocessing": False,
        "name": "efficientnet_v2_l",
    }
