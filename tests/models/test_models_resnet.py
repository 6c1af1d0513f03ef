"""keras_blocks.models.resnet and .cifar_resnet: counts, keras.applications
weights, formats, saving, bad arguments."""

import contextlib
import re

import keras
import numpy as np
import pytest

from keras_blocks.layers import BottleneckBlock
from keras_blocks.models import cifar_resnet, resnet
from tests.layers.layer_checks import random_inputs, to_numpy
from tests.models.model_checks import (
    argument_checks,
    assert_same_predictions,
    assert_same_weight_shapes,
    builders_arithmetic,
    random_kernels,
    randomize,
    same_blocks_as,
    trainable_count,
    zero_kernels,
)


@pytest.mark.slow
@builders_arithmetic
@pytest.mark.parametrize(
    "name, trainable",
    [
        # torchvision's resnet18 ... resnet152 and resnext50_32x4d.
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        ("resnet50", 25_557_032),
        ("resnet101", 44_549_160),
        ("resnet152", 60_192_808),
        ("resnext50_32x4d", 25_028_904),
        # SE-ResNet-50, reduction 16 (the SENet paper's 28.1M; timm's seresnet50).
        ("se_resnet50", 28_088_024),
    ],
)
def test_paper_configuration_counts(name, trainable):
    with zero_kernels():  # counts: any kernels, any size
        model = resnet.MODELS[name](input_shape=(32, 32, 3))
    assert model.name == name
    assert trainable_count(model) == trainable
    # Bias-free convolutions: every kernel is followed by BN (the SE and the
    # classifier are dense layers, with biases).
    biases = {w.path for w in model.weights if w.path.endswith("bias")}
    assert all("/se/" in path or "predictions" in path for path in biases)


def deeper(depth, preact, params):
    """A deeper keras.applications ResNet: the 50-layer one's blocks."""
    v2 = "V2" if preact else ""
    marks = same_blocks_as(f"ResNet50{v2}")
    return pytest.param(depth, preact, f"ResNet{depth}{v2}", params, marks=marks)


@pytest.mark.slow
@pytest.mark.parametrize(
    "depth, preact, name, params",
    [
        (50, False, "ResNet50", 25_636_712),
        (50, True, "ResNet50V2", 25_613_800),
        # Deeper models repeat the 50-layer models' blocks: PyTorch builds
        # them, TensorFlow took ~70 s, JAX more (compiles). 152 layers run
        # 101's code with other numbers of blocks (DEPTHS; its table: the
        # counts above and test_backbones' levels): 101 alone, ~30 s less.
        deeper(101, False, 44_707_176),
        deeper(101, True, 44_675_560),
    ],
)
def test_keras_applications_weights_give_same_outputs(depth, preact, name, params):
    kwargs = dict(input_shape=(64, 64, 3), classifier_activation=None)
    # NumPy's draws: the difference stays under 1% of the tolerance with them
    # as with Keras' (each backend).
    with random_kernels():
        theirs = getattr(keras.applications, name)(weights=None, **kwargs)
    with zero_kernels():  # theirs are copied in
        ours = resnet.ResNet(
            depth, preact=preact, layout="keras_applications", **kwargs
        )
    assert ours.name == theirs.name
    assert ours.count_params() == theirs.count_params() == params
    assert_same_weight_shapes(ours, theirs)
    randomize(theirs)
    ours.set_weights(theirs.get_weights())
    x = random_inputs((2, 64, 64, 3))
    logits = assert_same_predictions(ours, theirs, x)
    assert logits.std() > 1e-3  # a real comparison, not of constant outputs
    # ... which one wrong weight breaks.
    bias = ours.get_layer("predictions").bias
    bias.assign(to_numpy(bias) + 1e-2)
    with pytest.raises(AssertionError):
        assert_same_predictions(ours, theirs, x)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(depth=18),
        dict(depth=50, preact=True, layout="keras_applications"),
        pytest.param(
            dict(depth=50, groups=32, base_width=4, se_ratio=1 / 16),
            marks=pytest.mark.backends(
                "tensorflow",
                "torch",
                reason="45 s of compiles under JAX; the layers' own tests cover "
                "grouped and SE blocks on JAX",
            ),
        ),
    ],
)
def test_channels_first_equals_channels_last(kwargs):
    # Logits, compared to their own scale: randomized weights give logits in
    # the hundreds, where float32 rounding through 50 layers differs by ~1e-4
    # of the scale between layouts (PyTorch, ResNeXt with SE: 0.013 of 173),
    # and a softmax of them can move by more than any fixed tolerance. A
    # wrong layout differs by the scale itself.
    options = {**kwargs, "classes": 5, "classifier_activation": None}
    # NumPy's draws keep the layouts' difference under 2% of the tolerance on
    # each backend; the ResNeXt with SE's is at half of it with Keras' draws
    # and reached it with NumPy's (PyTorch): Keras' there.
    draws = contextlib.nullcontext() if "se_ratio" in kwargs else random_kernels()
    with draws:
        last = resnet.ResNet(**options, input_shape=(32, 32, 3))
    randomize(last)
    keras.config.set_image_data_format("channels_first")
    try:
        with zero_kernels():  # last's are copied in
            first = resnet.ResNet(**options, input_shape=(3, 32, 32))
    finally:
        keras.config.set_image_data_format("channels_last")
    first.set_weights(last.get_weights())
    x = random_inputs((2, 32, 32, 3))
    expected = to_numpy(last(x))
    np.testing.assert_allclose(
        to_numpy(first(np.transpose(x, (0, 3, 1, 2)))),
        expected,
        atol=1e-4 * np.abs(expected).max(),
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "module, builder, kwargs",
    [
        (resnet, "ResNet", dict(depth=18, se_ratio=0.25)),
        (cifar_resnet, "CIFARResNet", dict(depth=20)),
    ],
)
def test_saved_model_predicts_the_same(module, builder, kwargs, tmp_path):
    with random_kernels():
        model = getattr(module, builder)(**kwargs, input_shape=(32, 32, 3), classes=7)
    randomize(model)
    path = tmp_path / "model.keras"
    model.save(path)
    with zero_kernels():  # the file's are loaded in
        loaded = keras.saving.load_model(path, safe_mode=True)
    x = random_inputs((2, 32, 32, 3))
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))


@pytest.mark.parametrize(
    "kwargs, output_shape",
    [
        (dict(include_top=False), (2, 2, 2, 512)),
        (dict(include_top=False, pooling="avg"), (2, 512)),
        # The bottleneck models' 2048 features: keras.applications' weight
        # shapes above, and test_backbones' levels.
        (dict(include_top=False, pooling="max"), (2, 512)),
        (dict(classes=3), (2, 3)),
    ],
)
def test_heads(kwargs, output_shape):
    with zero_kernels():  # shapes only
        model = resnet.ResNet(depth=18, **kwargs, input_shape=(64, 64, 3))
    assert tuple(model(random_inputs((2, 64, 64, 3))).shape) == output_shape


@builders_arithmetic
def test_v2_downsamples_in_the_last_block_as_keras_applications():
    with zero_kernels():
        model = resnet.ResNet(50, preact=True, layout="keras_applications")
    blocks = [layer for layer in model.layers if isinstance(layer, BottleneckBlock)]
    strided = [block.name for block in blocks if block.strides > 1]
    assert strided == ["conv2_block3", "conv3_block4", "conv4_block6"]
    assert model.get_layer("conv2_block3").shortcut == "zero_pad"


@builders_arithmetic
@pytest.mark.parametrize(
    "depth, trainable",
    [(20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018), (110, 1_727_962)],
)
def test_cifar_resnet_counts(depth, trainable):
    name = f"cifar_resnet{depth}"
    with zero_kernels():
        model = cifar_resnet.MODELS[name]()
    assert model.name == name
    assert trainable_count(model) == trainable
    assert len(model.layers) == 1 + 1 + 3 * (depth - 2) // 6 + 2  # input, stem, head
    assert tuple(model.output.shape) == (None, 10)


def test_cifar_resnet_shortcuts_are_option_a():
    with zero_kernels():  # weight paths and shapes only
        model = cifar_resnet.CIFARResNet(20)
    # Option A adds no parameters: a strided block equals a block with an
    # identity shortcut in size, and the model has no shortcut convolutions.
    assert not any("shortcut" in w.path for w in model.weights)
    block = model.get_layer("stage2_block1")
    x = random_inputs((1, 32, 32, 16))
    assert tuple(block(x).shape) == (1, 16, 16, 32)


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ["--model", "resnet18", "--smoke", "--no-summary"],
        ["--model", "cifar_resnet20", "--smoke"],
    ],
)
def test_command_line(argv, capsys):
    from examples.models import main  # the command that builds a model by name

    main(argv)
    out = capsys.readouterr().out
    assert "parameters" in out
    assert "one step: loss" in out


@builders_arithmetic
@pytest.mark.parametrize(
    "name",
    [
        "resnext50_32x4d",
        "se_resnet18",
        "resnet18v2",
        *(
            pytest.param(name, marks=pytest.mark.slow)
            for name in (
                "resnext101_32x8d",
                "resnet34v2",
                "resnet101v2",
                "resnet152v2",
                "se_resnet34",
                "se_resnet101",
                "se_resnet152",
            )
        ),
    ],
)
def test_named_models_carry_their_names(name):
    # The others: test_paper_configuration_counts and test_models_state.py.
    with zero_kernels():
        model = resnet.MODELS[name](input_shape=(32, 32, 3), include_top=False)
    assert model.name == name


@pytest.mark.backend_independent(reason="the registry's names, in Python")
def test_command_line_lists_the_models(capsys):
    from examples.models import main  # the command that builds a model by name

    main(["--list", "resnext*"])
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["resnext50_32x4d", "resnext101_32x8d"]


@argument_checks
@pytest.mark.parametrize(
    "builder, kwargs, message",
    [
        (
            resnet.ResNet,
            dict(depth=42),
            "Invalid value for argument `depth`. Expected one of (18, 34, 50, 101, 152). Received: depth=42",
        ),
        (
            resnet.ResNet,
            dict(depth=18, groups=32, base_width=4),
            "Invalid value for argument `groups`. Grouped (ResNeXt) blocks need a bottleneck depth (50, 101, 152). Received: groups=32, base_width=4, depth=18",
        ),
        (
            resnet.ResNet,
            dict(depth=18, layout="keras_applications"),
            "Invalid value for argument `layout`. keras.applications has plain ResNet50/101/152 and their V2 only. Received: layout='keras_applications', depth=18, se_ratio=None, groups=1",
        ),
        (
            resnet.ResNet,
            dict(input_shape=(16, 16, 3)),
            "Invalid value for argument `input_shape`. ResNet needs a shape (height, width, channels) with sizes of at least 32. Received: input_shape=(16, 16, 3)",
        ),
        (
            resnet.ResNet,
            dict(input_shape=(64, 64)),
            "Invalid value for argument `input_shape`. ResNet needs a shape (height, width, channels) with sizes of at least 32. Received: input_shape=(64, 64)",
        ),
        (
            resnet.ResNet,
            dict(include_top=False, pooling="mean"),
            "Invalid value for argument `pooling`. Expected one of (None, 'avg', 'max'). Received: pooling='mean'",
        ),
        (
            resnet.ResNet,
            dict(classes=0),
            "Invalid value for argument `classes`. Expected a strictly positive integer. Received: classes=0",
        ),
        (
            cifar_resnet.CIFARResNet,
            dict(depth=21),
            "Invalid value for argument `depth`. Expected 6n + 2 for an integer n >= 1 (20, 32, 44, 56, 110, ...). Received: depth=21",
        ),
        (
            cifar_resnet.CIFARResNet,
            dict(input_shape=(2, 2, 3)),
            "Invalid value for argument `input_shape`. CIFARResNet needs a shape (height, width, channels) with sizes of at least 4. Received: input_shape=(2, 2, 3)",
        ),
    ],
)
def test_bad_args(builder, kwargs, message):
    # Zero kernels: the pooling and classes checks come after the layers.
    with zero_kernels(), pytest.raises(ValueError, match=re.escape(message)):
        builder(**kwargs)
