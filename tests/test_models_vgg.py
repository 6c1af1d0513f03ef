"""examples/vgg.py: parameter counts, keras.applications' VGG16 and VGG19 weights
giving the same logits, the BN variant, sizes, bad input."""

import re

import keras
import numpy as np
import pytest
from layer_checks import to_numpy

from examples import vgg

_JAX = keras.config.backend() == "jax"
_NOT_ON_JAX = pytest.mark.skipif(
    _JAX,
    reason="counted under TensorFlow and PyTorch: counts do not depend on the "
    "backend, and JAX compiles an initializer per new weight shape",
)
# Building two 138M-parameter models at 224x224 and running them takes ~15-20 s
# under TensorFlow and PyTorch, ~70 s under JAX (its random initializers).
_SLOW_ON_JAX = (pytest.mark.slow,) if _JAX else ()
SMALL = (vgg.MIN_SIZE, vgg.MIN_SIZE, 3)


def pixels(shape, seed=0):
    # Mean-centered 0-255 pixels, as keras.applications.vgg16.preprocess_input.
    return np.random.default_rng(seed).uniform(-128, 128, shape).astype("float32")


@_NOT_ON_JAX
@pytest.mark.parametrize(
    "depth, batch_norm, expected",
    [
        # VGG16 and VGG19: test_keras_applications_weights_give_same_logits.
        (11, False, 132_863_336),
        (13, False, 133_047_848),
        (16, True, 138_365_992),  # torchvision's vgg16_bn
    ],
)
def test_parameter_counts(depth, batch_norm, expected):
    model = vgg.VGG(depth, batch_norm=batch_norm)
    # Trainable as PyTorch counts them: BN's moving statistics are not.
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == expected
    assert model.input_shape == (None, 224, 224, 3)
    assert model.name == f"vgg{depth}{'_bn' if batch_norm else ''}"


@pytest.mark.parametrize(
    "depth, expected",
    [
        pytest.param(16, 138_357_544, marks=_SLOW_ON_JAX),
        pytest.param(19, 143_667_240, marks=_SLOW_ON_JAX),
    ],
)
def test_keras_applications_weights_give_same_logits(depth, expected):
    theirs = getattr(keras.applications, f"VGG{depth}")(
        weights=None, classifier_activation=None
    )
    # keras.applications starts its biases at zero; random ones are compared too.
    rng = np.random.default_rng(0)
    for weight in theirs.weights:
        if weight.path.endswith("bias"):
            weight.assign(rng.normal(0, 0.1, weight.shape).astype("float32"))
    ours = vgg.VGG(depth, classifier_activation=None)
    assert ours.count_params() == theirs.count_params() == expected
    # The same layer names, weight order and shapes.
    assert [(w.path.split("/")[0], tuple(w.shape)) for w in ours.weights] == [
        (w.path.split("/")[0], tuple(w.shape)) for w in theirs.weights
    ]
    ours.set_weights(theirs.get_weights())

    x = pixels((2, 224, 224, 3))
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


@pytest.mark.parametrize("depth, batch_norm", [(11, True), (19, False)])
def test_forward_at_the_smallest_size(depth, batch_norm):
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
    model = vgg.VGG(11, include_top=False, pooling=pooling, input_shape=(None, None, 3))
    assert to_numpy(model(pixels((2, 64, 96, 3)) / 128)).shape == shape


def test_main_smoke(capsys):
    model = vgg.main(
        ["--smoke", "--no-summary", "--model", "vgg11_bn", "--classes", "3"]
    )
    assert model.name == "vgg11_bn"
    assert model.input_shape == (None, 32, 32, 3)
    out = capsys.readouterr().out
    assert "one step: loss" in out and "predictions (2, 3)" in out


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(depth=18),
            "Invalid value for argument `depth`. Expected one of (11, 13, 16, 19). Received: depth=18",
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
