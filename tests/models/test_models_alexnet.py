"""keras_blocks.models.alexnet: parameter counts, the paper's layers,
torchvision's layout, sizes, bad input."""

import re

import numpy as np
import pytest

from keras_blocks.layers import LocalResponseNormalization
from keras_blocks.models import alexnet, get_model
from tests.layers.layer_checks import to_numpy
from tests.models.model_checks import (
    argument_checks,
    builders_arithmetic,
    random_kernels,
    zero_kernels,
)

SMALL = (alexnet.MIN_SIZE, alexnet.MIN_SIZE, 3)


def pixels(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, shape).astype("float32")


@builders_arithmetic
@pytest.mark.parametrize("groups, expected", [(2, 60_965_224), (1, 62_378_344)])
def test_parameter_counts(groups, expected):
    with zero_kernels():  # counts only
        model = alexnet.AlexNet(groups=groups)
    assert model.count_params() == expected == alexnet.GROUPS[groups]
    assert model.input_shape == (None, 227, 227, 3)
    assert model.get_layer("flatten").output.shape == (None, 6 * 6 * 256)


def test_paper_layers():
    with zero_kernels():  # layer settings and shapes only
        model = alexnet.AlexNet(input_shape=SMALL, classes=5)
        without = alexnet.AlexNet(input_shape=SMALL, classes=5, lrn=False)
    # The two-GPU split: conv2, conv4 and conv5 see their own GPU's maps only.
    groups = [model.get_layer(f"conv{i}").groups for i in range(1, 6)]
    assert groups == [1, 2, 1, 2, 2]
    assert all(model.get_layer(f"conv{i}").conv.use_bias for i in range(1, 6))
    # LRN after conv1 and conv2, with the paper's constants (n = 5, k = 2).
    norms = [
        layer for layer in model.layers if isinstance(layer, LocalResponseNormalization)
    ]
    assert [layer.name for layer in norms] == ["norm1", "norm2"]
    for layer in norms:
        constants = (layer.depth_radius, layer.bias, layer.alpha, layer.beta)
        assert constants == (2, 2.0, 1e-4, 0.75)
    pools = [model.get_layer(f"pool{i}") for i in (1, 2, 5)]
    assert all(p.pool_size == (3, 3) and p.strides == (2, 2) for p in pools)
    assert [model.get_layer(f"drop{i}").rate for i in (6, 7)] == [0.5, 0.5]
    assert model.get_layer("pool5").output.shape == (None, 1, 1, 256)
    assert not any(
        isinstance(layer, LocalResponseNormalization) for layer in without.layers
    )
    assert without.count_params() == model.count_params()  # LRN has no weights


@builders_arithmetic
def test_torchvision_parameter_count():
    with zero_kernels():  # counts only
        model = get_model("alexnet_torchvision")
    assert model.count_params() == alexnet.TORCHVISION_PARAMS == 61_100_840
    assert model.input_shape == (None, 224, 224, 3)
    assert model.get_layer("flatten").output.shape == (None, 6 * 6 * 256)
    assert model.name == "alexnet_torchvision"


def test_torchvision_layers():
    # torchvision's alexnet: Conv(11, stride 4, padding 2), ReLU, MaxPool(3, 2),
    # Conv(5, padding 2), ReLU, MaxPool, 3x Conv(3, padding 1) + ReLU,
    # MaxPool; Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear.
    size = alexnet.TORCHVISION_MIN_SIZE
    with zero_kernels():  # layer settings and shapes only
        model = alexnet.AlexNet(layout="torchvision", input_shape=(size, size, 3))
    convs = [model.get_layer(f"conv{i}") for i in range(1, 6)]
    assert [c.filters for c in convs] == [64, 192, 384, 256, 256]
    assert [c.kernel_size for c in convs] == [(11, 11), (5, 5)] + [(3, 3)] * 3
    assert [c.padding for c in convs] == ["valid"] + ["same"] * 4
    assert all(c.groups == 1 and c.conv.use_bias for c in convs)
    assert model.get_layer("conv1_pad").padding == ((2, 2), (2, 2))
    assert model.get_layer("conv1").output.shape == (None, 15, 15, 64)
    assert not any(isinstance(x, LocalResponseNormalization) for x in model.layers)
    head = [layer.name for layer in model.layers][-6:]
    assert head == ["flatten", "drop6", "fc6", "drop7", "fc7", "predictions"]
    assert model.get_layer("pool5").output.shape == (None, 1, 1, 256)


@pytest.mark.parametrize("groups", [2, 1])
def test_forward_at_the_smallest_size(groups):
    with random_kernels():
        model = alexnet.AlexNet(groups=groups, input_shape=SMALL, classes=5)
    y = to_numpy(model(pixels((2, *SMALL))))
    assert y.shape == (2, 5)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "pooling, shape", [(None, (2, 1, 1, 256)), ("avg", (2, 256)), ("max", (2, 256))]
)
def test_feature_extractor(pooling, shape):
    with zero_kernels():  # shapes only
        model = alexnet.AlexNet(include_top=False, pooling=pooling, input_shape=SMALL)
    assert to_numpy(model(pixels((2, *SMALL)))).shape == shape


def test_unknown_size_without_top():
    with zero_kernels():  # shapes only
        model = alexnet.AlexNet(
            include_top=False, pooling="avg", input_shape=(None, None, 3)
        )
    assert to_numpy(model(pixels((1, 80, 99, 3)))).shape == (1, 256)


def test_main_smoke_torchvision(capsys):
    from examples.models import main  # the command that builds a model by name

    model = main(
        ["--smoke", "--no-summary", "--model", "alexnet_torchvision", "--classes", "3"]
    )
    assert model.name == "alexnet_torchvision"
    assert model.input_shape == (None, 63, 63, 3)  # torchvision's smallest


def test_main_smoke(capsys):
    from examples.models import main  # the command that builds a model by name

    model = main(["--smoke", "--no-summary", "--model", "alexnet", "--classes", "3"])
    assert model.name == "alexnet"
    assert model.input_shape == (None, 67, 67, 3)
    out = capsys.readouterr().out
    assert "one step: loss" in out and "predictions (2, 3)" in out


@argument_checks
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(groups=4),
            "Invalid value for argument `groups`. Expected one of (1, 2). Received: groups=4",
        ),
        (
            dict(layout="caffe"),
            "Invalid value for argument `layout`. Expected one of ('paper', 'torchvision'). Received: layout='caffe'",
        ),
        (
            dict(layout="torchvision", groups=2),
            "Invalid value for argument `groups`. torchvision's AlexNet (layout='torchvision') takes groups=1 or None. Received: groups=2",
        ),
        (
            dict(layout="torchvision", lrn=True),
            "Invalid value for argument `lrn`. torchvision's AlexNet (layout='torchvision') takes lrn=False or None. Received: lrn=True",
        ),
        (
            dict(lrn=1),
            "Invalid value for argument `lrn`. Expected a boolean. Received: lrn=1",
        ),
        (
            dict(layout="torchvision", input_shape=(62, 62, 3)),
            "Invalid value for argument `input_shape`. AlexNet needs a shape (height, width, channels) with sizes of at least 63. Received: input_shape=(62, 62, 3)",
        ),
        (
            dict(pooling="mean"),
            "Invalid value for argument `pooling`. Expected one of (None, 'avg', 'max'). Received: pooling='mean'",
        ),
        (
            dict(classes=0),
            "Invalid value for argument `classes`. Expected a strictly positive integer. Received: classes=0",
        ),
        (
            dict(input_shape=(66, 66, 3)),
            "Invalid value for argument `input_shape`. AlexNet needs a shape (height, width, channels) with sizes of at least 67. Received: input_shape=(66, 66, 3)",
        ),
        (dict(input_shape=(227, 66, 3)), "Received: input_shape=(227, 66, 3)"),
        (dict(input_shape=(227, 227)), "Received: input_shape=(227, 227)"),
        (
            dict(input_shape=(None, None, 3)),
            "Invalid value for argument `input_shape`. With include_top=True, AlexNet needs a fully known input shape (it flattens a feature map into dense layers). Received: input_shape=(None, None, 3)",
        ),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        alexnet.AlexNet(**kwargs)
