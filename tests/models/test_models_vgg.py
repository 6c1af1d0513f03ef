"""keras_blocks.models.vgg: parameter counts, keras.applications' VGG16 and VGG19 weights
giving the same logits, configurations A-LRN and C against the paper's table 1,
the BN variant, sizes, bad input."""

import re

import keras
import numpy as np
import pytest

from keras_blocks import layers
from keras_blocks.models import vgg
from tests.layers.layer_checks import to_numpy
from tests.models.model_checks import (
    argument_checks,
    assert_same_predictions,
    assert_same_weight_shapes,
    builders_arithmetic,
    random_kernels,
    randomize,
    same_blocks_as,
    zero_kernels,
)

SMALL = (vgg.MIN_SIZE, vgg.MIN_SIZE, 3)


def pixels(shape, seed=0):
    # Mean-centered 0-255 pixels, as keras.applications.vgg16.preprocess_input.
    return np.random.default_rng(seed).uniform(-128, 128, shape).astype("float32")


@pytest.mark.slow  # 133M-144M parameters each
@builders_arithmetic
@pytest.mark.parametrize(
    "name, expected, paper_millions",
    [
        ("vgg11", 132_863_336, 133),  # A
        ("vgg11_lrn", 132_863_336, 133),  # A-LRN: LRN has no weights
        ("vgg13", 133_047_848, 133),  # B
        ("vgg16_1x1", 133_638_952, 134),  # C
        # D and E: keras.applications' VGG16 and VGG19 at 224x224 too.
        ("vgg16", 138_357_544, 138),
        ("vgg19", 143_667_240, 144),
        # torchvision's BN variants
        ("vgg13_bn", 133_053_736, None),
        ("vgg16_bn", 138_365_992, None),
        ("vgg19_bn", 143_678_248, None),
    ],
)
def test_parameter_counts(name, expected, paper_millions):
    with zero_kernels():  # counts only
        model = vgg.MODELS[name]()
    # Trainable as PyTorch counts them: BN's moving statistics are not.
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == expected
    if paper_millions is not None:  # the paper's table 2, in millions
        assert model.count_params() == expected
        assert round(expected / 1e6) == paper_millions
    assert model.input_shape == (None, 224, 224, 3)
    assert model.name == name


@pytest.mark.slow
@pytest.mark.parametrize(
    "depth, expected",
    [
        (16, 43_985_704),
        # VGG19 is VGG16's layers in a deeper table.
        pytest.param(19, 49_295_400, marks=same_blocks_as("VGG16")),
    ],
)
def test_keras_applications_weights_give_same_logits(depth, expected):
    # At 64x64, not 224x224: the same layers and weights but fc1's input
    # (2x2x512 flattened: still an order of rows that a wrong flatten breaks),
    # and a twelfth of the convolutions' time (their 224x224 counts:
    # test_parameter_counts).
    size = (64, 64, 3)
    with random_kernels():  # the difference: under 2% of the tolerance
        theirs = getattr(keras.applications, f"VGG{depth}")(
            weights=None, input_shape=size, classifier_activation=None
        )
    # keras.applications starts its biases at zero; random ones are compared too.
    rng = np.random.default_rng(0)
    for weight in theirs.weights:
        if weight.path.endswith("bias"):
            weight.assign(rng.normal(0, 0.1, weight.shape).astype("float32"))
    with zero_kernels():  # theirs are copied in
        ours = vgg.VGG(depth, input_shape=size, classifier_activation=None)
    assert ours.count_params() == theirs.count_params() == expected
    # The same layer names, weight order and shapes.
    assert [(w.path.split("/")[0], tuple(w.shape)) for w in ours.weights] == [
        (w.path.split("/")[0], tuple(w.shape)) for w in theirs.weights
    ]
    ours.set_weights(theirs.get_weights())

    x = pixels((2, *size))
    expected_logits = to_numpy(theirs(x))
    scale = float(np.abs(expected_logits).max())
    # A real comparison: logits that vary over classes and over images.
    assert expected_logits.std(axis=1).min() > 1e-2 * scale
    assert np.abs(expected_logits[0] - expected_logits[1]).max() > 1e-2 * scale
    assert np.abs(to_numpy(ours(x)) - expected_logits).max() <= 1e-4 * scale

    # It can fail: the first kernel read as BGR instead of RGB.
    kernel, bias = ours.get_layer("block1_conv1").get_weights()
    ours.get_layer("block1_conv1").set_weights([kernel[:, :, ::-1], bias])
    perturbed = to_numpy(ours(x[:1]))
    assert np.abs(perturbed - expected_logits[:1]).max() > 1e-2 * scale


def test_paper_layers():
    with zero_kernels():  # layer settings and shapes only
        model = vgg.VGG(11, input_shape=SMALL, classes=5)
    convs = [layer.name for layer in model.layers if "_conv" in layer.name]
    assert convs == [
        "block1_conv1",
        "block2_conv1",
        "block3_conv1",
        "block3_conv2",
        "block4_conv1",
        "block4_conv2",
        "block5_conv1",
        "block5_conv2",
    ]
    assert all(model.get_layer(name).batch_norm is False for name in convs)
    assert [model.get_layer(f"fc{i}_dropout").rate for i in (1, 2)] == [0.5, 0.5]
    assert model.get_layer("block5_pool").output.shape == (None, 1, 1, 512)


# The paper's table 1, column by column, as plain Keras layers: "conv3-64" is
# a 3x3 convolution with 64 filters and ReLU, "LRN" AlexNet's normalization.
TABLE_1 = {
    "vgg11_lrn": (
        "conv3-64 LRN maxpool conv3-128 maxpool conv3-256 conv3-256 maxpool "
        "conv3-512 conv3-512 maxpool conv3-512 conv3-512 maxpool"
    ),
    "vgg16_1x1": (
        "conv3-64 conv3-64 maxpool conv3-128 conv3-128 maxpool conv3-256 "
        "conv3-256 conv1-256 maxpool conv3-512 conv3-512 conv1-512 maxpool "
        "conv3-512 conv3-512 conv1-512 maxpool"
    ),
}


def plain_keras(column, input_shape, classes):
    x = inputs = keras.Input(input_shape)
    for entry in column.split():
        if entry == "maxpool":
            x = keras.layers.MaxPooling2D(2)(x)
        elif entry == "LRN":  # AlexNet's n = 5, k = 2, alpha = 1e-4, beta = 0.75
            x = layers.LocalResponseNormalization(2, 2.0, 1e-4, 0.75)(x)
        else:
            kernel, filters = entry.removeprefix("conv").split("-")
            x = keras.layers.Conv2D(
                int(filters), int(kernel), padding="same", activation="relu"
            )(x)
    x = keras.layers.Flatten()(x)
    for _ in range(2):
        x = keras.layers.Dense(4096, activation="relu")(x)
        x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))  # logits


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TABLE_1))
def test_configurations_a_lrn_and_c_are_the_papers_table_1(name):
    with random_kernels():  # the difference: under 1% of the tolerance
        ours = vgg.MODELS[name](
            input_shape=SMALL, classes=5, classifier_activation=None
        )
    with zero_kernels():  # ours are copied in
        theirs = plain_keras(TABLE_1[name], SMALL, 5)
    assert ours.name == name
    # The same weights, in the same order (LRN has none).
    assert_same_weight_shapes(ours, theirs)
    randomize(ours)  # biases too; He's kernels keep the signal through the depth
    theirs.set_weights(ours.get_weights())
    x = pixels((2, *SMALL), seed=2) / 128
    logits = assert_same_predictions(ours, theirs, x)
    scale = float(np.abs(logits).max())
    assert np.abs(logits[0] - logits[1]).max() > 1e-2 * scale  # a real comparison
    if name == "vgg11_lrn":  # it can fail: A, the same weights without LRN
        with zero_kernels():
            plain = vgg.VGG(
                11, input_shape=SMALL, classes=5, classifier_activation=None
            )
        plain.set_weights(ours.get_weights())
        assert np.abs(to_numpy(plain(x)) - logits).max() > 1e-2 * scale
    else:  # C's 1x1 kernels, where D has 3x3 ones
        kernels = [ours.get_layer(f"block{i}_conv3").conv.kernel for i in (3, 4, 5)]
        assert [tuple(k.shape[:2]) for k in kernels] == [(1, 1)] * 3


@pytest.mark.parametrize(
    "depth, batch_norm",
    [
        (11, True),
        # Without BN: VGG16's logits equal keras.applications' on every backend.
        pytest.param(19, False, marks=[pytest.mark.slow, same_blocks_as("VGG16")]),
    ],
)
def test_forward_at_the_smallest_size(depth, batch_norm):
    with random_kernels():
        model = vgg.VGG(depth, batch_norm=batch_norm, input_shape=SMALL, classes=5)
    assert model.name == f"vgg{depth}{'_bn' if batch_norm else ''}"
    assert model.get_layer("block1_conv1").batch_norm is batch_norm
    assert model.get_layer("block1_conv1").conv.use_bias  # torchvision's vgg*_bn
    y = to_numpy(model(pixels((2, *SMALL), seed=1) / 128))
    assert y.shape == (2, 5)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "pooling, shape", [(None, (2, 2, 3, 512)), ("avg", (2, 512)), ("max", (2, 512))]
)
def test_feature_extractor(pooling, shape):
    with zero_kernels():  # shapes only
        model = vgg.VGG(
            11, include_top=False, pooling=pooling, input_shape=(None, None, 3)
        )
    assert to_numpy(model(pixels((2, 64, 96, 3)) / 128)).shape == shape


@pytest.mark.slow
def test_main_smoke(capsys):
    from examples.models import main  # the command that builds a model by name

    model = main(["--smoke", "--no-summary", "--model", "vgg11_bn", "--classes", "3"])
    assert model.name == "vgg11_bn"
    assert model.input_shape == (None, 32, 32, 3)
    out = capsys.readouterr().out
    assert "one step: loss" in out and "predictions (2, 3)" in out


@argument_checks
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(depth=18),
            "Invalid value for argument `depth`. Expected one of (11, 13, 16, 19). Received: depth=18",
        ),
        (
            dict(lrn=1),
            "Invalid value for argument `lrn`. Expected a boolean. Received: lrn=1",
        ),
        (
            dict(last_1x1="yes"),
            "Invalid value for argument `last_1x1`. Expected a boolean. Received: last_1x1='yes'",
        ),
        (
            dict(pooling="mean"),
            "Invalid value for argument `pooling`. Expected one of (None, 'avg', 'max'). Received: pooling='mean'",
        ),
        (
            dict(classes=-1),
            "Invalid value for argument `classes`. Expected a strictly positive integer. Received: classes=-1",
        ),
        (
            dict(input_shape=(31, 31, 3)),
            "Invalid value for argument `input_shape`. VGG needs a shape (height, width, channels) with sizes of at least 32. Received: input_shape=(31, 31, 3)",
        ),
        (
            dict(input_shape=(None, 224, 3)),
            "Invalid value for argument `input_shape`. With include_top=True, VGG needs a fully known input shape (it flattens a feature map into dense layers). Received: input_shape=(None, 224, 3)",
        ),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        vgg.VGG(**kwargs)
