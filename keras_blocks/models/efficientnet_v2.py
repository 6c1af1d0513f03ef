"""EfficientNetV2-B0 ... B3, S, M and L through the library's EfficientNet builder.

EfficientNetV2 keeps EfficientNet's stem, head and MBConv blocks, and puts
Fused-MBConv blocks (one 3x3 convolution in place of the 1x1 expansion and
the depthwise convolution, no squeeze-and-excitation) in its early,
high-resolution stages, found by a search for training speed. It has four
stage tables: B0's, which B1-B3 scale in width and depth, and S's, M's and
L's, each used as it is. `EfficientNetV2(variant)` builds one with
`keras_blocks.efficientnet.EfficientNet`, from the table scaled here
(`scaled_table`), because keras.applications' EfficientNetV2 rounds widths to
the nearest multiple of 8 without EfficientNet's "never lose 10%" rule (B3's
first stage has 16 channels, not 24).

Reference: Tan & Le, "EfficientNetV2: Smaller Models and Faster Training",
ICML 2021. https://arxiv.org/abs/2104.00298

Two layouts (`layout=`), as for EfficientNet. `"keras_applications"` has the
layers, padding ("same"), batch normalization (momentum 0.9, epsilon 1e-3),
initializers, weight order and preprocessing of
`keras.applications.EfficientNetV2B0` ... `EfficientNetV2L`, so their weights
load with `model.set_weights(source.get_weights())`. `"torchvision"` (S, M,
L) is `torchvision.models.efficientnet_v2_s` ... `_l`: symmetric padding on
the strided convolutions and torchvision's dropout, so its weights load
through `WEIGHTS["torchvision"]`:

    from keras_blocks.models import get_model
    model = get_model("efficientnet_v2_s", weights="efficientnet_v2_s-dd5fe13b.pth")

The models of `MODELS` leave out the built-in preprocessing
(`include_preprocessing=False`), as every reference model;
`EfficientNetV2(variant)` keeps it: pixels in [0, 255], normalized as the
layout's weights expect (keras.applications': ImageNet's mean and deviation
for B0-B3, `x / 128 - 1` for S, M and L; torchvision's: ImageNet's for S and
M, `x / 127.5 - 1` for L). `get_model(..., include_preprocessing=True)` adds
the same: the builder's own, in the layout of the weights.

    python -m examples.train --model efficientnet_v2_b0 --epochs 5
"""

import functools
import re
from typing import Any, NamedTuple

import keras

from keras_blocks import _validation as check
from keras_blocks import efficientnet
from keras_blocks.efficientnet import Stage
from keras_blocks.layers import ConvBNAct, MBConvBlock
from keras_blocks.layers.image_preprocessing import IMAGENET_MEAN, IMAGENET_STDDEV
from keras_blocks.models._registry import register_family
from keras_blocks.models._weights import KerasApplicationsSource, WeightSource
from keras_blocks.models.backbones import PyramidSpec
from keras_blocks.porting import weight_layers

MIN_SIZE = 32  # total stride 32

# The paper's Table 4 (S) and keras.applications' tables (B0, M, L; the
# same as torchvision's for S, M and L), without the stem and the head:
# every first stage is Fused-MBConv1 with a residual where the stem's width
# allows it. Resolutions are those of the variant's default input.
#     block          repeats kernel stride expand in  out  se
B0_BLOCKS = (
    Stage("fused_mbconv", 1, 3, 1, 1, 32, 16, None),  # 112x112
    Stage("fused_mbconv", 2, 3, 2, 4, 16, 32, None),  # 56x56
    Stage("fused_mbconv", 2, 3, 2, 4, 32, 48, None),  # 28x28
    Stage("mbconv", 3, 3, 2, 4, 48, 96, 0.25),  # 14x14
    Stage("mbconv", 5, 3, 1, 6, 96, 112, 0.25),  # 14x14
    Stage("mbconv", 8, 3, 2, 6, 112, 192, 0.25),  # 7x7
)
S_BLOCKS = (
    Stage("fused_mbconv", 2, 3, 1, 1, 24, 24, None),  # 192x192
    Stage("fused_mbconv", 4, 3, 2, 4, 24, 48, None),  # 96x96
    Stage("fused_mbconv", 4, 3, 2, 4, 48, 64, None),  # 48x48
    Stage("mbconv", 6, 3, 2, 4, 64, 128, 0.25),  # 24x24
    Stage("mbconv", 9, 3, 1, 6, 128, 160, 0.25),  # 24x24
    Stage("mbconv", 15, 3, 2, 6, 160, 256, 0.25),  # 12x12
)
M_BLOCKS = (
    Stage("fused_mbconv", 3, 3, 1, 1, 24, 24, None),  # 240x240
    Stage("fused_mbconv", 5, 3, 2, 4, 24, 48, None),  # 120x120
    Stage("fused_mbconv", 5, 3, 2, 4, 48, 80, None),  # 60x60
    Stage("mbconv", 7, 3, 2, 4, 80, 160, 0.25),  # 30x30
    Stage("mbconv", 14, 3, 1, 6, 160, 176, 0.25),  # 30x30
    Stage("mbconv", 18, 3, 2, 6, 176, 304, 0.25),  # 15x15
    Stage("mbconv", 5, 3, 1, 6, 304, 512, 0.25),  # 15x15
)
L_BLOCKS = (
    Stage("fused_mbconv", 4, 3, 1, 1, 32, 32, None),  # 240x240
    Stage("fused_mbconv", 7, 3, 2, 4, 32, 64, None),  # 120x120
    Stage("fused_mbconv", 7, 3, 2, 4, 64, 96, None),  # 60x60
    Stage("mbconv", 10, 3, 2, 4, 96, 192, 0.25),  # 30x30
    Stage("mbconv", 19, 3, 1, 6, 192, 224, 0.25),  # 30x30
    Stage("mbconv", 25, 3, 2, 6, 224, 384, 0.25),  # 15x15
    Stage("mbconv", 7, 3, 1, 6, 384, 640, 0.25),  # 15x15
)


class Preset(NamedTuple):
    """A variant: its stage table, scaling, input size and head dropout."""

    blocks: tuple
    width_coefficient: float
    depth_coefficient: float
    resolution: int
    dropout_rate: float


# keras.applications' variants. Parameters for 1000 classes, equal to
# keras.applications' (whose preprocessing has no weights, nor has ours).
PRESETS = {
    "b0": Preset(B0_BLOCKS, 1.0, 1.0, 224, 0.2),  # 7,200,312
    "b1": Preset(B0_BLOCKS, 1.0, 1.1, 240, 0.2),  # 8,212,124
    "b2": Preset(B0_BLOCKS, 1.1, 1.2, 260, 0.2),  # 10,178,374
    "b3": Preset(B0_BLOCKS, 1.2, 1.4, 300, 0.2),  # 14,467,622
    "s": Preset(S_BLOCKS, 1.0, 1.0, 384, 0.2),  # 21,612,360
    "m": Preset(M_BLOCKS, 1.0, 1.0, 480, 0.2),  # 54,431,388
    "l": Preset(L_BLOCKS, 1.0, 1.0, 480, 0.2),  # 119,027,848
}
# torchvision's head dropout (its S, M, L; B0-B3 keep keras.applications').
TORCHVISION_DROPOUT = {"s": 0.2, "m": 0.3, "l": 0.4}
# Keras' (momentum, epsilon) in both layouts: keras.applications' V2 uses
# momentum 0.9 and Keras' default epsilon; torchvision's V2 BatchNorm2d(eps=1e-3)
# with PyTorch's momentum 0.1 (Keras' 1 - 0.1).
BATCH_NORM = (0.9, 1e-3)
# (mean, stddev) in pixel values of the built-in preprocessing.
IMAGENET = (
    tuple(255.0 * m for m in IMAGENET_MEAN),
    tuple(255.0 * s for s in IMAGENET_STDDEV),
)
SIGNED = (128.0, 128.0)  # keras.applications' S, M, L: x / 128 - 1
HALF = (127.5, 127.5)  # torchvision's L: (x / 255 - 0.5) / 0.5


def round_filters(filters: int, width_coefficient: float, divisor: int = 8) -> int:
    """keras.applications' EfficientNetV2 width rounding: the nearest multiple
    of `divisor`, at least `divisor` (EfficientNet's also adds a `divisor`
    where that loses over 10%).

    Examples:
        >>> from keras_blocks.models.efficientnet_v2 import round_filters
        >>> round_filters(16, 1.2), round_filters(1280, 1.1)
        (16, 1408)
    """
    scaled = filters * width_coefficient
    return max(divisor, int(scaled + divisor / 2) // divisor * divisor)


def scaled_table(blocks, width_coefficient, depth_coefficient):
    """`blocks` with widths and repeats scaled as keras.applications'
    EfficientNetV2 scales them (what `EfficientNet` then builds unscaled).

    Examples:
        >>> from keras_blocks.models.efficientnet_v2 import B0_BLOCKS, scaled_table
        >>> [stage.repeats for stage in scaled_table(B0_BLOCKS, 1.2, 1.4)]
        [2, 3, 3, 5, 7, 12]
    """
    return tuple(
        Stage(
            stage.block,
            efficientnet.round_repeats(stage.repeats, depth_coefficient),
            stage.kernel_size,
            stage.strides,
            stage.expand_ratio,
            round_filters(stage.filters_in, width_coefficient),
            round_filters(stage.filters_out, width_coefficient),
            stage.se_ratio,
        )
        for stage in blocks
    )


def _channels(input_shape, data_format):
    """The input's channels where `input_shape` gives them (the builder
    checks the shape); 3 otherwise."""
    if isinstance(input_shape, list | tuple) and len(input_shape) == 3:
        channels = input_shape[-1 if data_format == "channels_last" else 0]
        if isinstance(channels, int):
            return channels
    return 3


def EfficientNetV2(variant: str, **kwargs: Any) -> keras.Model:
    """EfficientNetV2-`variant` (`"b0"` ... `"b3"`, `"s"`, `"m"`, `"l"`).

    Arguments as `keras_blocks.efficientnet.EfficientNet`'s (`include_top`,
    `classes`, `input_shape`, `pooling`, `classifier_activation`,
    `include_preprocessing`, `layout`, `drop_connect_rate`, `bn_*`,
    `data_format`, `name`, ...), less the scaling and the table, which the
    variant sets. The defaults are the layout's: batch normalization
    `BATCH_NORM`, head dropout keras.applications' (0.2) or torchvision's
    (`TORCHVISION_DROPOUT`), and the preprocessing its weights expect.

    Raises:
        ValueError: on an unknown variant, or as `EfficientNet`.

    Examples:
        >>> from keras_blocks.models.efficientnet_v2 import EfficientNetV2
        >>> model = EfficientNetV2("b0", input_shape=(64, 64, 3))
        >>> model.count_params(), model.name
        (7200312, 'efficientnetv2-b0')
        >>> model.get_layer("block1a").fused
        True
    """
    variant = check.one_of("variant", variant, tuple(PRESETS))
    preset = PRESETS[variant]
    layout = check.one_of(
        "layout", kwargs.pop("layout", "keras_applications"), efficientnet.LAYOUTS
    )
    torchvision = layout == "torchvision"
    data_format = check.data_format(kwargs.pop("data_format", None))
    channels = _channels(kwargs.get("input_shape"), data_format)
    if torchvision:
        normalization = HALF if variant == "l" else IMAGENET
        dropout_rate = TORCHVISION_DROPOUT.get(variant, preset.dropout_rate)
    else:
        normalization = IMAGENET if variant.startswith("b") else SIGNED
        dropout_rate = preset.dropout_rate
    if normalization is IMAGENET and channels != 3:
        normalization = SIGNED  # ImageNet's are RGB statistics (as keras.applications)
    kwargs.setdefault("input_normalization", normalization)
    kwargs.setdefault("dropout_rate", dropout_rate)
    kwargs.setdefault("bn_momentum", BATCH_NORM[0])
    kwargs.setdefault("bn_epsilon", BATCH_NORM[1])
    kwargs.setdefault("name", f"efficientnetv2-{variant}")
    width, depth = preset.width_coefficient, preset.depth_coefficient
    return efficientnet.EfficientNet(
        width_coefficient=1.0,
        depth_coefficient=1.0,
        resolution=preset.resolution,
        blocks=scaled_table(preset.blocks, width, depth),
        top_filters=round_filters(1280, width),
        layout=layout,
        data_format=data_format,
        **kwargs,
    )


MODELS = {
    f"efficientnet_v2_{variant}": functools.partial(
        EfficientNetV2,
        variant,
        include_preprocessing=False,
        name=f"efficientnet_v2_{variant}",
    )
    for variant in PRESETS
}


# Pretrained weights: torchvision's `features.{stage}.{block}.block.{i}` are
# the block's units in order, those it has of (expansion, depthwise, SE,
# projection): a Fused-MBConv's are its expansion and projection, or its
# single convolution; the stem is `features.0`, the head the last `features`.
UNITS = ("expand", "depthwise", "se", "project")
SUFFIXES = {
    "expand/conv": ".0",
    "expand/bn": ".1",
    "depthwise": ".0",
    "depthwise_bn": ".1",
    "se/reduce": ".fc1",
    "se/expand": ".fc2",
    "project/conv": ".0",
    "project/bn": ".1",
}
BLOCK = re.compile(r"block(\d+)([a-z]|_\d+)/(.+)")


def _unit(path_in_block):
    return path_in_block.split("/")[0].removesuffix("_bn")


def torchvision_mapping(model):
    """Keras layer path -> torchvision key prefix, for a model built with
    `layout="torchvision"` (torchvision's `efficientnet_v2_s`, `_m`, `_l`)."""
    same = [
        layer.name
        for layer in model.layers
        if isinstance(layer, ConvBNAct | MBConvBlock) and layer.padding != "symmetric"
    ]
    if same:
        raise ValueError(
            f"The model's {same[0]} pads 'same' (keras.applications' layout); "
            "torchvision's EfficientNetV2 pads its strided convolutions "
            "symmetrically."
        )
    layers = weight_layers(model)
    units = {}  # block -> the units it has
    for path in layers:
        if match := BLOCK.fullmatch(path):
            block = path.split("/")[0]
            units.setdefault(block, set()).add(_unit(match[3]))
    stages = {int(m[1]) for path in layers if (m := BLOCK.fullmatch(path))}
    mapping = {}
    for path in layers:
        if path in ("stem/conv", "stem/bn"):
            mapping[path] = "features.0." + ("0" if path.endswith("conv") else "1")
        elif path in ("top/conv", "top/bn"):
            suffix = "0" if path.endswith("conv") else "1"
            mapping[path] = f"features.{len(stages) + 1}.{suffix}"
        elif path == "predictions":
            mapping[path] = "classifier.1"
        elif (match := BLOCK.fullmatch(path)) and match[3] in SUFFIXES:
            block = path.split("/")[0]
            present = [unit for unit in UNITS if unit in units[block]]
            position = present.index(_unit(match[3]))
            letter = match[2]  # "a", "b", ..., then "_26", "_27", ...
            index = ord(letter) - ord("a") if len(letter) == 1 else int(letter[1:])
            mapping[path] = (
                f"features.{match[1]}.{index}.block.{position}{SUFFIXES[match[3]]}"
            )
    return mapping


TORCHVISION = {"layout": "torchvision"}
WEIGHTS = {
    "torchvision": WeightSource(
        mapping=torchvision_mapping,
        bn_epsilon=BATCH_NORM[1],
        head=("classifier.",),
        layout=(
            "Build it with layout='torchvision', e.g. "
            "MODELS['efficientnet_v2_s'](layout='torchvision') or "
            "efficientnet_v2.EfficientNetV2('s', layout='torchvision')."
        ),
        files={
            # MODELS name: (the file torchvision downloads, its top-1, build
            # options).
            "efficientnet_v2_s": (
                "efficientnet_v2_s-dd5fe13b.pth",
                84.228,
                TORCHVISION,
            ),
            "efficientnet_v2_m": (
                "efficientnet_v2_m-dc08266a.pth",
                85.112,
                TORCHVISION,
            ),
            "efficientnet_v2_l": (
                "efficientnet_v2_l-59c71312.pth",
                85.808,
                TORCHVISION,
            ),
        },
        # L's weights expect images normalized with mean and std 0.5
        # (torchvision's transforms for it), S's and M's ImageNet's; the
        # model's built-in preprocessing follows.
        preprocessing={
            "efficientnet_v2_s": "torch",
            "efficientnet_v2_m": "torch",
            "efficientnet_v2_l": "tf",
        },
    ),
}
KERAS_APPLICATIONS = {"layout": "keras_applications"}
# keras.io's top-1 of keras.applications' EfficientNetV2B0 ... L.
KERAS_TOP1 = (78.7, 79.8, 80.5, 82.0, 83.9, 85.3, 85.7)
WEIGHTS["keras_applications"] = KerasApplicationsSource(
    applications={
        f"efficientnet_v2_{variant}": f"EfficientNetV2{variant.upper()}"
        for variant in PRESETS
    },
    files={
        # keras.applications downloads "efficientnetv2-b0.h5" (and
        # "efficientnetv2-b0_notop.h5" without the top).
        f"efficientnet_v2_{variant}": (
            f"efficientnetv2-{variant}.h5",
            top1,
            KERAS_APPLICATIONS,
        )
        for variant, top1 in zip(PRESETS, KERAS_TOP1, strict=True)
    },
    license="Apache-2.0 (keras.applications)",
)


def _fused(layer):
    """Whether `layer` is a Fused-MBConv block: EfficientNetV2 shares
    EfficientNet's layer names and classes; its fused `block1a` tells it
    apart."""
    return isinstance(layer, MBConvBlock) and layer.fused


# The levels of `keras_blocks.models.backbone`: the last trunk layer at each
# stride (B0: block2b, block3b, block5e, block6h). Three markers, so that an
# EfficientNetV2, which has EfficientNet's two, is told as this family.
PYRAMID = PyramidSpec(
    {"stem": ConvBNAct, "block1a": _fused, "top": ConvBNAct},
    r"stem|block\d+(?:[a-z]|_\d+)",
)

register_family(
    __name__,
    MODELS,
    pyramid=PYRAMID,
    min_size=MIN_SIZE,
    default_size=PRESETS["b0"].resolution,
    layouts=efficientnet.LAYOUTS,
    weights=WEIGHTS,
    default_sizes={
        f"efficientnet_v2_{variant}": preset.resolution
        for variant, preset in PRESETS.items()
    },
    preprocessing=lambda options: None,  # the builder's include_preprocessing
)
