"""The EfficientNet builder: rounding rules, compound scaling, parameter counts
and weight compatibility with keras.applications, custom scaling, bad input."""

import math
import re
import sys

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_blocks import efficientnet
from keras_blocks.efficientnet import (
    B0_BLOCKS,
    PRESETS,
    EfficientNet,
    Stage,
    compound_scaling,
    load_keras_applications_weights,
    round_filters,
    round_repeats,
)
from keras_blocks.layers import ConvBNAct, MBConvBlock
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

# Total parameters of keras.applications.EfficientNetB0 ... B7 (1000 classes).
KERAS_APPLICATIONS_PARAMS = {
    "b0": 5_330_571,
    "b1": 7_856_239,
    "b2": 9_177_569,
    "b3": 12_320_535,
    "b4": 19_466_823,
    "b5": 30_562_527,
    "b6": 43_265_143,
    "b7": 66_658_687,
}
# A two-stage table (one fused, one MBConv stage) for the tests that train,
# save or compare layouts, where B0's 16 blocks would only cost time.
TINY_BLOCKS = (
    ("fused_mbconv", 1, 3, 2, 2, 8, 16, None),
    {
        "block": "mbconv",
        "repeats": 2,
        "kernel_size": 3,
        "strides": 2,
        "expand_ratio": 4,
        "filters_in": 16,
        "filters_out": 24,
        "se_ratio": 0.25,
    },
)
TINY = dict(blocks=TINY_BLOCKS, top_filters=32, classes=5, input_shape=(32, 32, 3))
# The rounding rules and the compound scaling: arithmetic, before Keras.
arithmetic = pytest.mark.backend_independent(reason="Python arithmetic, before Keras")


# keras.applications pads its strided convolutions explicitly, by the parity
# of each size; ours pad "same": equal. At 57x71 the five strided layers see
# both parities under both kernel sizes: heights 57, 29, 15, 8, 4 and widths
# 71, 36, 18, 9, 5 (3x3: stem, block2a, block4a; 5x5: block3a, block6a).
SIZE = (57, 71)


def pixels(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


@pytest.fixture
def drawn_kernels():
    with kernels("drawn", seed=0):
        yield


@pytest.fixture
def unset_kernels():
    with kernels("zeros"):
        yield


def layer_output(model, layer, x):
    return to_numpy(keras.Model(model.input, model.get_layer(layer).output)(x))


def applications_pair(variant, **kwargs):
    """keras.applications' `variant` with random weights, and ours with them."""
    name = f"EfficientNet{variant.upper()}"
    with kernels("drawn", seed=0):
        theirs = getattr(keras.applications, name)(weights=None, **kwargs)
    randomize(theirs)
    with kernels("zeros"):
        ours = getattr(efficientnet, name)(**kwargs)
    assert_same_weight_shapes(ours, theirs)
    ours.set_weights(theirs.get_weights())
    return theirs, ours


@pytest.fixture(scope="module")
def b0_pair():
    """B0 at `SIZE`, returning logits: built once for the tests that read it."""
    return applications_pair("b0", input_shape=(*SIZE, 3), classifier_activation=None)


def train_one_epoch(model, x, classes, run_eagerly=False):
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss="sparse_categorical_crossentropy",
        run_eagerly=run_eagerly,
    )
    before = [to_numpy(w).copy() for w in model.trainable_weights]
    # One step on the whole batch. (Two steps of two images cost a second
    # step's fixed work, ~2.5 s of CPU for phi=9 under PyTorch; a block's
    # branch still learns unless stochastic depth drops it for all images.)
    history = model.fit(x, np.arange(len(x)) % classes, batch_size=len(x), verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    # The updated weights, which a second step's loss used to check.
    assert all(np.isfinite(to_numpy(w)).all() for w in model.weights)
    # Every kernel learns. (A BN shift feeding, through a skip, only into
    # batch-normalized layers can get an exactly zero gradient: BN in
    # training mode removes per-channel constants.)
    unchanged = [
        w.path
        for b, w in zip(before, model.trainable_weights, strict=True)
        if w.path.endswith("kernel") and np.array_equal(b, to_numpy(w))
    ]
    assert not unchanged, f"a training epoch left {unchanged} unchanged"


# Rounding rules.


@arithmetic
@settings(max_examples=200)
@given(
    filters=st.integers(1, 4096),
    width=st.floats(0.05, 8.0),
    divisor=st.sampled_from([1, 2, 4, 8, 16]),
)
def test_round_filters_properties(filters, width, divisor):
    scaled = filters * width
    rounded = round_filters(filters, width, divisor)
    assert rounded % divisor == 0
    assert rounded >= divisor
    assert rounded >= 0.9 * scaled  # never loses more than 10%
    assert rounded <= scaled + divisor
    # Monotone in the filters and in the width.
    assert round_filters(filters + 1, width, divisor) >= rounded
    assert round_filters(filters, width * 1.01, divisor) >= rounded


@arithmetic
@settings(max_examples=200)
@given(repeats=st.integers(1, 64), depth=st.floats(0.05, 8.0))
def test_round_repeats_properties(repeats, depth):
    rounded = round_repeats(repeats, depth)
    assert rounded == math.ceil(repeats * depth)  # always rounded up
    assert rounded >= repeats * depth
    assert round_repeats(repeats + 1, depth) >= rounded
    assert round_repeats(repeats, depth * 1.01) >= rounded


@arithmetic
@pytest.mark.parametrize(
    "filters, width, expected",
    [
        # Stem and head widths of keras.applications' B3-B6.
        (32, 1.2, 40),
        (32, 1.4, 48),
        (32, 1.6, 48),
        (32, 1.8, 56),
        (1280, 1.8, 2304),
        # Nearest multiple of 8 would lose >10% (24 < 0.9 * 27): one more.
        (27, 1.0, 32),
        (26, 1.0, 24),
        (3, 1.0, 8),  # never below the divisor
    ],
)
def test_round_filters_values(filters, width, expected):
    assert round_filters(filters, width) == expected


@arithmetic
def test_compound_scaling():
    assert compound_scaling(0) == (1.0, 1.0, 224)
    scaling = compound_scaling(1)
    assert scaling.depth_coefficient == pytest.approx(1.2)
    assert scaling.width_coefficient == pytest.approx(1.1)
    assert scaling.resolution == 258  # 224 * 1.15 = 257.6
    custom = compound_scaling(3, alpha=2.0, beta=1.5, gamma=1.0)
    assert custom == pytest.approx((1.5**3, 8.0, 224))
    # The paper's constraint: each step of phi about doubles the FLOPs.
    assert pytest.approx(2, abs=0.1) == 1.2 * 1.1**2 * 1.15**2


# keras.applications compatibility.


@builders_arithmetic
@pytest.mark.parametrize(
    "variant",
    [v if v == "b0" else pytest.param(v, marks=pytest.mark.slow) for v in PRESETS],
)
def test_parameter_count_equals_keras_applications(variant, unset_kernels):
    # Once: B1-B7 took ~40 s under TensorFlow; JAX compiles every new weight
    # shape's initializer, ~20-40 s a variant.
    model = getattr(efficientnet, f"EfficientNet{variant.upper()}")()
    assert model.count_params() == KERAS_APPLICATIONS_PARAMS[variant]
    assert model.name == f"efficientnet{variant}"
    preset = PRESETS[variant]
    assert model.input_shape == (None, preset.resolution, preset.resolution, 3)
    assert model.get_layer("top_dropout").rate == preset.dropout_rate


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant, size",
    [
        # SIZE has both parities under both kernel sizes (a 64x64 case, even
        # sizes only, added nothing to it).
        ("b0", SIZE),
        # B7 is B0's blocks in a deeper, wider table. (At 57x71 its random
        # logits, in the hundreds, differed by up to 8e-4 of their scale.)
        pytest.param("b7", (64, 64), marks=same_blocks_as("B0")),
    ],
)
def test_keras_applications_weights_give_same_outputs(variant, size, request):
    # applications_pair checks the weight shapes and copies theirs into ours.
    if variant == "b0":
        theirs, ours = request.getfixturevalue("b0_pair")
    else:
        theirs, ours = applications_pair(
            variant, input_shape=(*size, 3), classifier_activation=None
        )
    # The same stochastic depth ramp (keras.applications' per-sample Dropout).
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
    # And the probabilities of the default softmax head.
    probabilities = keras.ops.softmax(logits)
    expected = keras.ops.softmax(to_numpy(theirs(x)))
    assert np.abs(to_numpy(probabilities) - to_numpy(expected)).max() <= 1e-4


@pytest.mark.slow
def test_imagenet_weights_load_with_the_same_predictions(tmp_path, monkeypatch):
    """keras.applications' `weights="imagenet"` path, offline: its code loads
    a weights file we write (with ImageNet's normalization as the real file
    stores it) and adds its extra Rescaling; ours must agree after
    `load_keras_applications_weights`."""
    # At SIZE, the shapes the other comparisons compiled under JAX.
    kwargs = dict(include_top=False, pooling="avg", input_shape=(*SIZE, 3))
    with kernels("drawn", seed=0):
        source = keras.applications.EfficientNetB0(weights=None, **kwargs)
    randomize(source)
    # The real file holds the standard deviations where variances belong.
    normalization = next(
        layer for layer in source.layers if type(layer).__name__ == "Normalization"
    )
    normalization.set_weights(
        [np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]), np.array(0)]
    )
    weights_file = tmp_path / "efficientnetb0_notop.h5"
    source.save(weights_file)  # the legacy H5 format of the published files

    def fake_get_file(fname, origin, **kwargs):
        assert fname == weights_file.name
        return str(weights_file)

    # keras.applications fetches the file through keras.utils.get_file's
    # module; serve ours instead of downloading (no network here).
    monkeypatch.setattr(
        sys.modules[keras.utils.get_file.__module__], "get_file", fake_get_file
    )
    with kernels("zeros"):  # every weight is loaded or set below
        imagenet = keras.applications.EfficientNetB0(weights="imagenet", **kwargs)
        ours = efficientnet.EfficientNetB0(**kwargs)
    load_keras_applications_weights(ours, imagenet)
    variance = ours.get_layer("normalization").get_weights()[1]
    np.testing.assert_allclose(variance, np.square([0.229, 0.224, 0.225]), rtol=1e-6)
    x = pixels((2, *SIZE, 3))
    assert_same_predictions(ours, imagenet, x)

    # The stems see the same normalized input; a plain set_weights would
    # miss the extra Rescaling and feed them a differently scaled one.
    expected = layer_output(imagenet, "stem_activation", x)
    np.testing.assert_allclose(
        layer_output(ours, "stem", x), expected, atol=1e-4, rtol=1e-4
    )
    ours.set_weights(imagenet.get_weights())  # now plainly, as a counter-check
    assert np.abs(layer_output(ours, "stem", x) - expected).max() > 0.1


@pytest.mark.slow
def test_weights_load_without_preprocessing(b0_pair):
    theirs, _ = b0_pair
    with kernels("zeros"):  # every weight is loaded below
        ours = efficientnet.EfficientNetB0(
            include_preprocessing=False,
            input_shape=(*SIZE, 3),
            classifier_activation=None,
        )
    load_keras_applications_weights(ours, theirs)
    x = pixels((2, *SIZE, 3))
    # The head's features (what a model without top returns); their
    # normalization is the identity: x / 255.
    expected = layer_output(theirs, "top_activation", x)
    np.testing.assert_allclose(
        layer_output(ours, "top", x / 255.0), expected, atol=1e-4
    )


@pytest.mark.slow
@pytest.mark.backend_independent(
    reason="a comparison of weight shapes, in Python, before any weight is loaded"
)
def test_load_weights_of_another_variant_fails_clearly(unset_kernels):
    theirs = keras.applications.EfficientNetB0(weights=None, classes=10)
    ours = EfficientNet(**TINY)
    with pytest.raises(ValueError, match="do not fit"):
        load_keras_applications_weights(ours, theirs)


def test_normalization_follows_set_weights(unset_kernels):
    model = EfficientNet(**TINY, include_top=False)
    normalization = model.get_layer("normalization")
    # Starts at ImageNet's statistics.
    np.testing.assert_allclose(
        normalization.get_weights()[1], np.square([0.229, 0.224, 0.225])
    )
    mean = np.array([0.1, 0.2, 0.3], "float32")
    variance = np.array([4.0, 9.0, 16.0], "float32")
    normalization.set_weights([mean, variance, np.array(0)])
    x = pixels((1, 32, 32, 3))
    y = to_numpy(normalization(x / 255.0))
    np.testing.assert_allclose(y, (x / 255.0 - mean) / np.sqrt(variance), rtol=1e-5)


def test_normalization_is_the_identity_for_other_than_three_channels(unset_kernels):
    model = EfficientNet(**{**TINY, "input_shape": (32, 32, 1)})
    mean, variance, _ = model.get_layer("normalization").get_weights()
    assert mean.tolist() == [0.0] and variance.tolist() == [1.0]


# Custom scaling.


@pytest.mark.slow
@pytest.mark.parametrize(
    "phi",
    [
        0.5,
        pytest.param(
            9,
            marks=same_blocks_as("phi=0.5"),
        ),
    ],
)
def test_any_phi_builds_and_trains(phi, drawn_kernels):
    # phi=9 beyond B7: what it adds to phi=0.5 (the depth and width rounding
    # at large coefficients, the stochastic depth ramp over 87 blocks, a
    # 143M-parameter model that trains) is the builder's Python, the same on
    # every backend, so it runs under PyTorch only: ~13 s there against 161 s
    # under JAX (mostly compiling the train step) and 30 s under TensorFlow
    # (its two steps run eagerly) in one CI run on two cores. phi=0.5 builds
    # and trains the same blocks on every backend.
    # 64x64: at 32x32 the last stages are 1x1, and batch-norm statistics of
    # two 1x1 samples made phi=9 diverge on a second step.
    model = EfficientNet(phi=phi, classes=3, input_shape=(64, 64, 3))
    scaling = compound_scaling(phi)
    top = model.get_layer("top").filters
    assert top == round_filters(1280, scaling.width_coefficient)
    blocks = [layer for layer in model.layers if isinstance(layer, MBConvBlock)]
    assert len(blocks) == sum(
        round_repeats(stage.repeats, scaling.depth_coefficient) for stage in B0_BLOCKS
    )
    rates = [block.drop_path_rate for block in blocks]
    assert rates[0] == 0 and rates == sorted(rates) and rates[-1] < 0.2
    # Eagerly under TensorFlow: the claim is that every kernel of the network
    # learns, not TensorFlow's tracing of its 23 blocks (~10 s of this test's
    # 15 s of CPU); the TINY tables' steps below and each block's check_layer
    # step trace the same layers. (An eager step under JAX compiles every op
    # on its own: ~48 s of CPU against ~13 s for the compiled step.)
    eagerly = keras.config.backend() == "tensorflow"
    train_one_epoch(model, pixels((4, 64, 64, 3)), 3, run_eagerly=eagerly)


@pytest.mark.slow
def test_custom_table_builds_trains_and_saves(tmp_path, drawn_kernels):
    model = EfficientNet(**TINY)
    kinds = [layer.fused for layer in model.layers if isinstance(layer, MBConvBlock)]
    assert kinds == [True, False, False]
    assert model.get_layer("stem").filters == 8
    x = pixels((4, 32, 32, 3))
    train_one_epoch(model, x, 5)
    path = tmp_path / "efficientnet.keras"
    model.save(path)
    with kernels("zeros"):  # every weight comes from the file
        loaded = keras.saving.load_model(path, safe_mode=True)
    # On two images, the batch the other TINY checks call (JAX compiles
    # eager calls per shape).
    np.testing.assert_allclose(
        to_numpy(loaded(x[:2])), to_numpy(model(x[:2])), atol=1e-6
    )


@pytest.mark.slow
def test_channels_first_equals_channels_last():
    with kernels("drawn", seed=0):
        last = EfficientNet(**TINY, include_top=False, pooling="avg")
    with kernels("zeros"):  # set from `last` below
        first = EfficientNet(
            **{**TINY, "input_shape": (3, 32, 32)},
            include_top=False,
            pooling="avg",
            data_format="channels_first",
        )
    assert first.output_shape == last.output_shape == (None, 32)
    randomize(last)
    first.set_weights(last.get_weights())  # the same weights in both layouts
    x = pixels((2, 32, 32, 3))
    np.testing.assert_allclose(
        to_numpy(first(np.transpose(x, (0, 3, 1, 2)))),
        to_numpy(last(x)),
        atol=1e-4,
        rtol=1e-4,
    )
    train_one_epoch(first, np.transpose(x, (0, 3, 1, 2)), 2)


@builders_arithmetic
def test_torchvision_layout(unset_kernels):
    # The same weights; symmetric padding and torchvision's BN instead
    # (tests/porting/test_pretrained_efficientnet.py compares with torchvision).
    def units(model):
        return [u for u in model.layers if isinstance(u, ConvBNAct | MBConvBlock)]

    default = EfficientNet(**TINY)
    torch_layout = EfficientNet(**TINY, layout="torchvision")
    shapes = [tuple(w.shape) for w in default.weights]
    assert [tuple(w.shape) for w in torch_layout.weights] == shapes
    assert {(u.padding, u.bn_momentum, u.bn_epsilon) for u in units(default)} == {
        ("same", 0.99, 1e-3)
    }
    assert {(u.padding, u.bn_momentum, u.bn_epsilon) for u in units(torch_layout)} == {
        ("symmetric", 0.9, 1e-5)
    }
    given = EfficientNet(**TINY, layout="torchvision", bn_momentum=0.5, bn_epsilon=0.1)
    assert {(u.bn_momentum, u.bn_epsilon) for u in units(given)} == {(0.5, 0.1)}


@pytest.mark.parametrize(
    "pooling, shape", [(None, (2, 4, 4, 32)), ("avg", (2, 32)), ("max", (2, 32))]
)
def test_feature_extractor_pooling(pooling, shape, unset_kernels):
    model = EfficientNet(**TINY, include_top=False, pooling=pooling)
    assert to_numpy(model(pixels((2, 32, 32, 3)))).shape == shape


def test_unknown_spatial_size_and_mixed_precision(drawn_kernels):
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = EfficientNet(**{**TINY, "input_shape": (None, None, 3)})
    assert model.get_layer("block2a").compute_dtype == "bfloat16"
    y = to_numpy(keras.ops.cast(model(pixels((1, 40, 48, 3))), "float32"))
    assert y.shape == (1, 5) and np.isfinite(y).all()


@pytest.mark.slow
# Symbolic shapes and parameter counts: once (JAX compiled an initializer per
# new weight shape, ~25 s for two examples); 4 examples, 3 in the quick tier.
@builders_arithmetic
@settings(max_examples=min(4, settings.default.max_examples))
@given(
    phi=st.floats(0.0, 2.0),
    step=st.floats(0.0, 1.5),
    height=st.integers(32, 100),
    width=st.integers(32, 100),
)
def test_builder_over_random_phi(phi, step, height, width):
    kwargs = dict(include_top=False, input_shape=(height, width, 3))
    with kernels("zeros"):
        small = EfficientNet(phi=phi, **kwargs)
        large = EfficientNet(phi=phi + step, **kwargs)
    top = round_filters(1280, compound_scaling(phi).width_coefficient)
    assert small.output_shape == (None, -(-height // 32), -(-width // 32), top)
    assert large.count_params() >= small.count_params()
    if step >= 1:  # 10% wider at least: the head alone grows
        assert large.count_params() > small.count_params()


# Bad input.

ROW = ("mbconv", 1, 3, 1, 1, 32, 16, 0.25)


@argument_checks
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(phi=-1),
            "Invalid value for argument `phi`. Expected a non-negative finite number. Received: phi=-1",
        ),
        (dict(phi=float("nan")), "Received: phi=nan"),
        (
            dict(phi=1, width_coefficient=1.2),
            "Invalid value for argument `phi`. Expected None when `width_coefficient` is given",
        ),
        (
            dict(width_coefficient=-1.0),
            "Invalid value for argument `width_coefficient`. Expected a strictly positive finite number. Received: width_coefficient=-1.0",
        ),
        (dict(depth_coefficient=0.0), "Received: depth_coefficient=0.0"),
        (
            dict(resolution=16),
            "Invalid value for argument `resolution`. Expected at least the network's total stride (32). Received: resolution=16",
        ),
        (
            dict(input_shape=(16, 64, 3)),
            "Invalid value for argument `input_shape`. Expected (height, width, channels) with known channels, and heights and widths that are None or at least the network's total stride (32). Received: input_shape=(16, 64, 3)",
        ),
        (dict(input_shape=(64, 64, None)), "Received: input_shape=(64, 64, None)"),
        (dict(input_shape=(64, 64)), "Received: input_shape=(64, 64)"),
        (
            dict(input_shape=(64, 64, 3), data_format="channels_first"),
            "Expected (channels, height, width)",
        ),
        (dict(classes=0), "Received: classes=0"),
        (
            dict(pooling="mean"),
            "Invalid value for argument `pooling`. Expected one of ('avg', 'max'). Received: pooling='mean'",
        ),
        (dict(dropout_rate=1.0), "Received: dropout_rate=1.0"),
        (
            dict(drop_connect_rate=-0.1),
            "Invalid value for argument `drop_connect_rate`. Expected a number in the range [0, 1). Received: drop_connect_rate=-0.1",
        ),
        (dict(include_top="yes"), "Received: include_top='yes'"),
        (
            dict(classifier_activation="softermax"),
            "Received: classifier_activation='softermax'",
        ),
        (dict(depth_divisor=0), "Received: depth_divisor=0"),
        (dict(top_filters=-8), "Received: top_filters=-8"),
        (dict(data_format="NCHW"), "Received: data_format='NCHW'"),
        (
            dict(layout="pytorch"),
            "Invalid value for argument `layout`. Expected one of ('keras_applications', 'torchvision'). Received: layout='pytorch'",
        ),
        (dict(bn_epsilon=0), "Received: bn_epsilon=0"),
        (dict(bn_momentum=1.0), "Received: bn_momentum=1.0"),
        # The stage table: the message names the argument and the row.
        (
            dict(blocks=[]),
            "Invalid value for argument `blocks`. Expected at least one stage row.",
        ),
        (
            dict(blocks="mbconv"),
            "Invalid value for argument `blocks`. Expected a sequence",
        ),
        (
            dict(blocks=[ROW, ("mbconvv", 1, 3, 1, 6, 16, 24, 0.25)]),
            "Invalid value for argument `blocks`. Row 1 is malformed (Invalid value for argument `block`. Expected one of ('mbconv', 'fused_mbconv'). Received: block='mbconvv')",
        ),
        (
            dict(blocks=[ROW[:7]]),
            "Invalid value for argument `blocks`. Row 0 is malformed (Stage.__init__() missing 1 required positional argument: 'se_ratio')",
        ),
        (
            dict(blocks=[ROW, {"block": "mbconv", "repeats": 2}]),
            "Row 1 is malformed (Stage.__init__() missing 6 required positional arguments",
        ),
        (dict(blocks=[ROW, 7]), "Row 1 is malformed (not a Stage, tuple or dict)"),
        (
            dict(blocks=[("mbconv", 0, 3, 1, 1, 32, 16, 0.25)]),
            "Row 0 is malformed (Invalid value for argument `repeats`. Expected a strictly positive integer. Received: repeats=0)",
        ),
        (
            dict(blocks=[ROW, ("mbconv", 1, 3, 2, 6, 24, 40, 0.25)]),
            "Invalid value for argument `blocks`. Row 1 has filters_in=24, but row 0 outputs filters_out=16.",
        ),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        EfficientNet(**kwargs)


@arithmetic
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: compound_scaling(-0.5), "Received: phi=-0.5"),
        (lambda: compound_scaling(1, alpha=0), "Received: alpha=0"),
        (lambda: round_filters(0, 1.0), "Received: filters=0"),
        (lambda: round_filters(32, -2.0), "Received: width_coefficient=-2.0"),
        (lambda: round_filters(32, 1.0, divisor=0), "Received: divisor=0"),
        (lambda: round_repeats(2.5, 1.0), "Received: repeats=2.5"),
        (lambda: round_repeats(2, "x"), "Received: depth_coefficient='x'"),
        (lambda: Stage("mbconv", 1, 3, 1, 1, 32, 16, 1.5), "Received: se_ratio=1.5"),
    ],
)
def test_helpers_bad_args(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


@argument_checks
def test_presets_reject_scaling_arguments():
    with pytest.raises(TypeError, match="width_coefficient"):
        efficientnet.EfficientNetB1(width_coefficient=2.0)
    with pytest.raises(ValueError, match="Expected None when `width_coefficient`"):
        efficientnet.EfficientNetB1(phi=1)
