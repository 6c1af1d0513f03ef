"""Every reference model as a backbone (`keras_blocks.models.backbone`): the
levels'
layers, sizes and channels, in both data formats, and with converted weights
the feature maps of torchvision's ResNet-18 and timm's SE-ResNet-50.

Building all the reference models costs minutes, most of it drawing the
initial kernels: the shape checks draw none (zero kernels; nothing is run on
them). One model per builder configuration is checked on every backend, the
deeper and wider variants under PyTorch, where full-size models build fastest
(their levels come from the same code as their shallow siblings').
"""

import math

import keras
import numpy as np
import pytest

from keras_blocks.models import (
    FAMILIES,
    backbone,
    family,
    get_model,
    list_models,
    load_pretrained,
    model_entry,
    pyramid_layers,
    resnet,
)
from keras_blocks.models.backbones import LEVELS
from tests.models.model_checks import image_shape, kernels, same_blocks_as
from tests.porting.torch_references import (
    randomized,
    save_state_dict,
    timm,
    torchvision,
)

# One model per builder configuration (block kind, preact, SE, LRN, BN, 1x1,
# the torchvision layouts, auxiliary heads): on every backend.
EVERY_BACKEND = (
    "cifar_resnet20",
    "cifar10_cnn",
    "resnet18",
    "resnet50",
    "resnet18v2",
    "se_resnet18",
    "alexnet",
    "alexnet_no_lrn",
    "alexnet_torchvision",
    "vgg11",
    "vgg16_bn",
    "vgg11_lrn",
    "vgg16_1x1",
    "googlenet",
    "googlenet_no_bn_lrn",
    "googlenet_aux",
    "googlenet_torchvision",
    "efficientnet_b0",
)
# Channels of each level (P2 ... P5, or from P0 for the CIFAR models): the
# papers' tables, timm's feature_info for EfficientNet.
BASIC, BOTTLENECK = (64, 128, 256, 512), (256, 512, 1024, 2048)
CHANNELS = {
    "cifar_resnet": (16, 32, 64),
    "cifar10_cnn": (32, 64, 128, 128),
    **{
        f"{p}resnet{d}{v}": BASIC
        for p in ("", "se_")
        for d in (18, 34)
        for v in ("", "v2")
    },
    **{
        f"{p}resnet{d}{v}": BOTTLENECK
        for p in ("", "se_")
        for d in (50, 101, 152)
        for v in ("", "v2")
    },
    "resnext": BOTTLENECK,
    "alexnet": (96, 256, 256, 256),
    "alexnet_torchvision": (64, 192, 256, 256),
    "vgg": (256, 512, 512, 512),
    "googlenet": (192, 480, 832, 1024),
    "efficientnet_b0": (24, 40, 112, 320),
    "efficientnet_b1": (24, 40, 112, 320),
    "efficientnet_b2": (24, 48, 120, 352),
    "efficientnet_b3": (32, 48, 136, 384),
    "efficientnet_b4": (32, 56, 160, 448),
    "efficientnet_b5": (40, 64, 176, 512),
    "efficientnet_b6": (40, 72, 200, 576),
    "efficientnet_b7": (48, 80, 224, 640),
    # timm's feature_info of tf_efficientnetv2_b0 ... l.
    "efficientnet_v2_b0": (32, 48, 112, 192),
    "efficientnet_v2_b1": (32, 48, 112, 192),
    "efficientnet_v2_b2": (32, 56, 120, 208),
    "efficientnet_v2_b3": (40, 56, 136, 232),
    "efficientnet_v2_s": (48, 64, 160, 256),
    "efficientnet_v2_m": (48, 80, 176, 512),
    "efficientnet_v2_l": (64, 96, 224, 640),
}
# The layers of the levels where the stage table alone decides them.
LAYERS = {
    "cifar_resnet20": ("stage1_block3", "stage2_block3", "stage3_block3"),
    "cifar_resnet110": ("stage1_block18", "stage2_block18", "stage3_block18"),
    "cifar10_cnn": ("block1_conv2", "block2_conv2", "block3_conv2", "block3_pool"),
    "resnet18": ("conv2_block2", "conv3_block2", "conv4_block2", "conv5_block2"),
    "resnet18v2": ("conv2_block2", "conv3_block2", "conv4_block2", "post_relu"),
    "se_resnet18": ("conv2_block2", "conv3_block2", "conv4_block2", "conv5_block2"),
    "resnet152": ("conv2_block3", "conv3_block8", "conv4_block36", "conv5_block3"),
    "resnet101v2": ("conv2_block3", "conv3_block4", "conv4_block23", "post_relu"),
    "alexnet": ("norm1", "norm2", "conv5", "pool5"),
    "alexnet_no_lrn": ("conv1", "conv2", "conv5", "pool5"),
    "vgg19_bn": ("block3_conv4", "block4_conv4", "block5_conv4", "block5_pool"),
    "vgg16_1x1": ("block3_conv3", "block4_conv3", "block5_conv3", "block5_pool"),
    "googlenet": ("conv2", "inception_3b", "inception_4e", "inception_5b"),
    "googlenet_no_bn_lrn": ("norm2", "inception_3b", "inception_4e", "inception_5b"),
    "efficientnet_b0": ("block2b", "block3b", "block5c", "block7a"),
    "efficientnet_b7": ("block2g", "block3g", "block5j", "block7d"),
    "efficientnet_v2_b0": ("block2b", "block3b", "block5e", "block6h"),
    "efficientnet_v2_l": ("block2g", "block3g", "block5s", "block7g"),
}


def channels(name):
    for key in (name, name.rstrip("0123456789"), name.split("_")[0]):
        if key in CHANNELS:
            return CHANNELS[key]
    for key in ("cifar_resnet", "resnext", "vgg"):
        if name.startswith(key):
            return CHANNELS[key]
    raise AssertionError(
        f"{name}: add its levels' channels to CHANNELS here and its row to "
        "docs/backbones.md"
    )


def expected_sizes(name, size, strides):
    if name.startswith("alexnet"):
        # An unpadded 11x11/4 convolution (torchvision's pads 2), then three
        # unpadded 3x3/2 poolings: P2 is before the first.
        sizes = [(size + (4 if name == "alexnet_torchvision" else 0) - 11) // 4 + 1]
        for _ in range(3):
            sizes.append((sizes[-1] - 3) // 2 + 1)
        return sizes
    return [math.ceil(size / stride) for stride in strides]


@pytest.fixture
def no_kernels():
    """Zero kernels (`model_checks.kernels`), for symbolic shape checks, for
    weights that a test loads and for a model that runs but whose values do
    not matter: Keras' random initializers (every kernel of the reference
    models) took most of the time."""
    with kernels("zeros"):
        yield


def check_levels(name, data_format, include_top=True):
    size = model_entry(name).min_size
    options = {} if include_top else {"include_top": False}
    if name == "googlenet_aux" and not include_top:
        options = {}  # its auxiliary heads need the top
    model = get_model(name, input_shape=image_shape(size), **options)
    features = backbone(model)
    levels = list(features.output)
    first = 0 if name.startswith("cifar") else 2
    assert levels == [f"P{k}" for k in range(first, first + len(levels))]
    strides = [2 ** int(level[1:]) for level in levels]
    sizes = expected_sizes(name, size, strides)
    for level, want_size, want_channels in zip(
        levels, sizes, channels(name), strict=True
    ):
        shape = tuple(features.output[level].shape[1:])
        if data_format == "channels_first":
            shape = shape[1:] + shape[:1]
        assert shape == (want_size, want_size, want_channels), (name, level)
    if name in LAYERS:
        assert tuple(pyramid_layers(model).values()) == LAYERS[name]
    assert features.count_params() <= model.count_params()
    return model, features


@pytest.mark.parametrize("name", EVERY_BACKEND)
def test_levels_on_every_backend(name, no_kernels):
    keras.config.set_image_data_format("channels_last")
    check_levels(name, "channels_last")


@pytest.mark.slow
@same_blocks_as("the EVERY_BACKEND models")
def test_levels_of_every_other_reference_model(no_kernels):
    # Every name not checked above, including models a family module adds.
    for name in list_models():
        if name not in EVERY_BACKEND:
            check_levels(name, "channels_last")


@pytest.mark.parametrize("name", ["cifar_resnet20", "resnet18v2", "alexnet"])
def test_channels_first_runs(name, no_kernels):
    keras.config.set_image_data_format("channels_first")
    try:
        _, features = check_levels(name, "channels_first")
        size = model_entry(name).min_size
        maps = features.predict_on_batch(np.zeros((2, 3, size, size), "float32"))
        for level, value in maps.items():
            assert value.shape[1:] == features.output[level].shape[1:]
    finally:
        keras.config.set_image_data_format("channels_last")


@pytest.mark.slow
def test_levels_in_channels_first(no_kernels):
    # Symbolic on every backend: the sizes and channels of channels_first.
    # (Their channels_last levels are test_levels_on_every_backend's, which
    # makes the same check of these five.)
    keras.config.set_image_data_format("channels_first")
    try:
        for name in (
            "cifar10_cnn",
            "resnet50",
            "vgg16_bn",
            "googlenet",
            "efficientnet_b0",
        ):
            check_levels(name, "channels_first")
    finally:
        keras.config.set_image_data_format("channels_last")


@pytest.mark.parametrize(
    "name", ["cifar_resnet20", "cifar10_cnn", "resnet18", "vgg11", "googlenet"]
)
def test_with_and_without_top_the_same_levels(name, no_kernels):
    with_top, _ = check_levels(name, "channels_last")
    without, features = check_levels(name, "channels_last", include_top=False)
    assert pyramid_layers(with_top) == pyramid_layers(without)
    if name in ("resnet18", "googlenet"):
        return  # they run in the weights test; GoogLeNet is slow eagerly on JAX
    # The backbone runs, and gives the shapes it promised.
    size = model_entry(name).min_size
    x = np.random.default_rng(0).uniform(size=(2, size, size, 3)).astype("float32")
    maps = features(x, training=False)
    assert list(maps) == list(features.output)
    for level, value in maps.items():
        assert value.shape[1:] == features.output[level].shape[1:]


@pytest.mark.slow
def test_keras_applications_v2_strides_at_the_end_of_a_stage(no_kernels):
    # keras.applications' v2 halves the resolution in the last block of
    # conv2_x ... conv4_x: each level is the block before it.
    model = resnet.ResNet(
        50, preact=True, layout="keras_applications", input_shape=(64, 64, 3)
    )
    assert pyramid_layers(model) == {
        "P2": "conv2_block2",
        "P3": "conv3_block3",
        "P4": "conv4_block5",
        "P5": "post_relu",
    }
    features = backbone(model)
    assert {k: tuple(v.shape[1:]) for k, v in features.output.items()} == {
        "P2": (16, 16, 256),
        "P3": (8, 8, 512),
        "P4": (4, 4, 1024),
        "P5": (2, 2, 2048),
    }


@pytest.mark.backend_independent(
    reason="names: the builders' and the registry's Python"
)
def test_family_names_each_family(no_kernels):
    for name, model_name in (
        ("cifar_resnet", "cifar_resnet20"),
        ("cifar10_cnn", "cifar10_cnn"),
        ("alexnet", "alexnet"),
    ):
        size = model_entry(model_name).min_size
        model = get_model(model_name, input_shape=(size, size, 3))
        assert family(model) == name == model_entry(model_name).family


@pytest.mark.backend_independent(reason="layer names, checked in Python")
def test_refuses_other_models():
    # Our layer names on Keras' own layers: not a reference model.
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, name="block5_conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="block5_pool")(x)
    lookalike = keras.Model(inputs, x, name="lookalike")
    families = ", ".join(FAMILIES)  # every family's models are backbones
    expected = (
        "Invalid value for argument `model`. Expected a reference model of "
        "keras_blocks.models (one of `list_models()`, or a model built by "
        f"{families}'s builder), recognized by its layer names. Received: model="
    )
    with pytest.raises(ValueError) as error:
        backbone(lookalike)
    assert str(error.value) == (
        expected + "<Functional 'lookalike', layers block5_conv1, block5_pool, ...>"
    )
    with pytest.raises(ValueError) as error:
        pyramid_layers("resnet50")
    assert str(error.value) == expected + "'resnet50'"


def _nhwc(maps):
    return {k: np.transpose(v, (0, 2, 3, 1)) for k, v in maps.items()}


def check_features(model, reference, levels, x):
    """Our levels equal the reference's maps (NCHW, in the order of
    `levels`), each within 1e-4 of its scale."""
    import torch

    with torch.no_grad():
        theirs = reference(torch.from_numpy(np.transpose(x, (0, 3, 1, 2))))
    theirs = dict(zip(levels, [t.numpy() for t in theirs], strict=True))
    if keras.config.image_data_format() == "channels_last":
        theirs = _nhwc(theirs)
        images = x
    else:
        images = np.transpose(x, (0, 3, 1, 2))
    ours = backbone(model).predict_on_batch(images)
    for level in levels:
        mine = ours[level]
        assert mine.shape == theirs[level].shape, level
        scale = np.abs(theirs[level]).max()
        difference = np.abs(mine - theirs[level]).max() / scale
        print(f"{level}: {difference:.1e} of its scale")
        assert difference <= 1e-4, f"{level} differs by {difference:.1e}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "data_format",
    [
        "channels_last",
        pytest.param(
            "channels_first",
            marks=pytest.mark.backends(
                "torch",
                reason="channels_first: ResNet-18's equals its channels_last on "
                "every backend (test_models_resnet.py)",
            ),
        ),
    ],
)
def test_resnet18_levels_are_torchvisions_stages(data_format, tmp_path, no_kernels):
    net = randomized(torchvision().models.resnet18())
    stages = [net.layer1, net.layer2, net.layer3, net.layer4]
    _, path = save_state_dict(net, tmp_path, "resnet18")

    def reference(images):  # the stages' outputs, by forward hooks
        outputs = []
        hooks = [
            stage.register_forward_hook(lambda m, i, out: outputs.append(out))
            for stage in stages
        ]
        try:
            net(images)
        finally:
            for hook in hooks:
                hook.remove()
        return outputs

    keras.config.set_image_data_format(data_format)
    try:
        model = resnet.ResNet(18, include_top=False, input_shape=image_shape(64))
        load_pretrained(model, path, resnet.WEIGHTS["torchvision"])
        x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
        check_features(model, reference, LEVELS, x)
    finally:
        keras.config.set_image_data_format("channels_last")


@pytest.mark.slow
@pytest.mark.backends(
    "torch", reason="SE-ResNet-50 under PyTorch (ResNet-18 everywhere)"
)
def test_se_resnet50_levels_are_timms_features(tmp_path, no_kernels):
    net = timm().create_model(
        "seresnet50", features_only=True, out_indices=(1, 2, 3, 4)
    )
    net = randomized(net)
    _, path = save_state_dict(net, tmp_path, "seresnet50")
    model = get_model("se_resnet50", include_top=False, input_shape=(64, 64, 3))
    load_pretrained(model, path, resnet.WEIGHTS["timm"])
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype("float32")
    check_features(model, net, LEVELS, x)


def test_command_line_prints_the_levels(capsys, no_kernels):
    from examples import backbones  # the command (its library is tested above)

    backbones.main(["--model", "cifar10_cnn", "--image-size", "8"])
    assert capsys.readouterr().out.splitlines() == [
        "P0  block1_conv2     (8, 8, 32)",
        "P1  block2_conv2     (4, 4, 64)",
        "P2  block3_conv2     (2, 2, 128)",
        "P3  block3_pool      (1, 1, 128)",
    ]
