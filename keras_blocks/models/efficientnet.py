"""EfficientNet-B0 ... B7 through the library's compound-scaled builder.

The whole family is one stage table (`keras_blocks.efficientnet.B0_BLOCKS`),
scaled in depth, width and resolution by `compound_scaling(phi)`; the official
variants use the paper's rounded coefficients (`PRESETS`). See
`keras_blocks/efficientnet.py` for the table and the builder, and
`efficientnet.load_keras_applications_weights` for ImageNet weights.

Reference: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks", ICML 2019.

The named models take images normalized as their weights expect, so they
leave out the built-in [0, 255] preprocessing (`include_preprocessing=False`,
which `get_model(..., include_preprocessing=True)` turns on); the library's
builders include it by default, as keras.applications does.

    python -m examples.models --model efficientnet_b3 --smoke

Load torchvision's ImageNet weights (the file `torch.hub` downloads for
`torchvision.models.efficientnet_b0(weights="DEFAULT")`): the model is built
with `layout="torchvision"` (the build options of `WEIGHTS`' files); or
keras.applications' (downloaded once), with its preprocessing inside:

    from keras_blocks.models import get_model
    path = "efficientnet_b0_rwightman-7f5810bc.pth"   # torchvision's file
    model = get_model("efficientnet_b0", weights=path)
    model = get_model("efficientnet_b0", weights="imagenet",
                      include_preprocessing=True)
"""

import functools
import re

from keras_blocks import efficientnet
from keras_blocks.layers import ConvBNAct, MBConvBlock, Normalization
from keras_blocks.models._registry import register_family
from keras_blocks.models._weights import KerasApplicationsSource, WeightSource
from keras_blocks.models.backbones import PyramidSpec
from keras_blocks.porting import weight_layers

MIN_SIZE = 32  # total stride 32
# variant: parameters (= keras.applications; with preprocessing: 7 more)
VARIANTS = {
    "b0": efficientnet.EfficientNetB0,  # 5,330,564
    "b1": efficientnet.EfficientNetB1,  # 7,856,232
    "b2": efficientnet.EfficientNetB2,  # 9,177,562
    "b3": efficientnet.EfficientNetB3,  # 12,320,528
    "b4": efficientnet.EfficientNetB4,  # 19,466,816
    "b5": efficientnet.EfficientNetB5,  # 30,562,520
    "b6": efficientnet.EfficientNetB6,  # 43,265,136
    "b7": efficientnet.EfficientNetB7,  # 66,658,680
}

# Named as their keys (the library's builders take keras.applications'
# names, "efficientnetb0").
MODELS = {
    f"efficientnet_{variant}": functools.partial(
        builder, include_preprocessing=False, name=f"efficientnet_{variant}"
    )
    for variant, builder in VARIANTS.items()
}


# Pretrained weights: torchvision's `features.{stage}.{block}.block.{i}` are
# the block's units in order (expansion if any, depthwise, SE, projection);
# the stem is `features.0` and the head convolution the last `features`.
UNIT_KEYS = {  # unit of an MBConvBlock: (position, suffix)
    "expand/conv": (0, ".0"),
    "expand/bn": (0, ".1"),
    "depthwise": (1, ".0"),
    "depthwise_bn": (1, ".1"),
    "se/reduce": (2, ".fc1"),
    "se/expand": (2, ".fc2"),
    "project/conv": (3, ".0"),
    "project/bn": (3, ".1"),
}
BLOCK = re.compile(r"block(\d+)([a-z]|_\d+)/(.+)")


def _block_index(letter):
    return ord(letter) - ord("a") if len(letter) == 1 else int(letter[1:])


def torchvision_mapping(model):
    """Keras layer path -> torchvision key prefix, for a model built with
    `layout="torchvision"` (torchvision's `efficientnet_b0` ... `b7`)."""
    same = [
        layer.name
        for layer in model.layers
        if isinstance(layer, ConvBNAct | MBConvBlock) and layer.padding != "symmetric"
    ]
    if same:
        raise ValueError(
            f"The model's {same[0]} pads 'same' (keras.applications' layout); "
            "torchvision's EfficientNet pads its strided convolutions "
            "symmetrically."
        )
    layers = weight_layers(model)
    stages = {int(m[1]) for path in layers if (m := BLOCK.fullmatch(path))}
    mapping = {}
    for path, layer in layers.items():
        if path in ("stem/conv", "stem/bn"):
            mapping[path] = "features.0." + ("0" if path.endswith("conv") else "1")
        elif path in ("top/conv", "top/bn"):
            suffix = "0" if path.endswith("conv") else "1"
            mapping[path] = f"features.{len(stages) + 1}.{suffix}"
        elif path == "predictions":
            mapping[path] = "classifier.1"
        elif isinstance(layer, Normalization):
            mapping[path] = None  # torchvision normalizes outside the network
        elif (match := BLOCK.fullmatch(path)) and match[3] in UNIT_KEYS:
            stage, block, unit = int(match[1]), _block_index(match[2]), match[3]
            position, suffix = UNIT_KEYS[unit]
            # Without the expansion (expand_ratio 1) the others move up one.
            if f"block{match[1]}{match[2]}/expand/conv" not in layers:
                position -= 1
            mapping[path] = f"features.{stage}.{block}.block.{position}{suffix}"
    return mapping


def torchvision_bn_epsilon(model):
    """The epsilon of torchvision's weights for `model`'s variant, told by
    its head's width (B0-B4: 1e-5, B5-B7: 1e-3; see TORCHVISION_BATCH_NORM)."""
    top = weight_layers(model).get("top/conv")
    for variant, preset in efficientnet.PRESETS.items():
        width = efficientnet.round_filters(1280, preset.width_coefficient)
        if top is not None and top.filters == width:
            return efficientnet.TORCHVISION_BATCH_NORM[variant][1]
    return efficientnet.TORCHVISION_BATCH_NORM["b0"][1]  # nn.BatchNorm2d's


TORCHVISION = {"layout": "torchvision"}
_TORCHVISION_FILES = {
    # MODELS name: (the file torchvision downloads, its top-1, build options)
    "efficientnet_b0": ("efficientnet_b0_rwightman-7f5810bc.pth", 77.692, TORCHVISION),
    # IMAGENET1K_V2 (torchvision's recipe); V1, timm's, is
    # efficientnet_b1_rwightman-bac287d4.pth (78.642), the same layout.
    "efficientnet_b1": ("efficientnet_b1-c27df63c.pth", 79.838, TORCHVISION),
    "efficientnet_b2": ("efficientnet_b2_rwightman-c35c1473.pth", 80.608, TORCHVISION),
    "efficientnet_b3": ("efficientnet_b3_rwightman-b3899882.pth", 82.008, TORCHVISION),
    "efficientnet_b4": ("efficientnet_b4_rwightman-23ab8bcd.pth", 83.384, TORCHVISION),
    "efficientnet_b5": ("efficientnet_b5_lukemelas-1a07897c.pth", 83.444, TORCHVISION),
    "efficientnet_b6": ("efficientnet_b6_lukemelas-24a108a5.pth", 84.008, TORCHVISION),
    "efficientnet_b7": ("efficientnet_b7_lukemelas-c5b4e57e.pth", 84.122, TORCHVISION),
}
WEIGHTS = {
    "torchvision": WeightSource(
        mapping=torchvision_mapping,
        bn_epsilon=torchvision_bn_epsilon,
        head=("classifier.",),
        layout=(
            "Build it with layout='torchvision', e.g. "
            "MODELS['efficientnet_b0'](layout='torchvision') or "
            "efficientnet.EfficientNetB0(layout='torchvision')."
        ),
        files=_TORCHVISION_FILES,
    ),
}
KERAS_APPLICATIONS = {"layout": "keras_applications"}
# keras.io's top-1 of keras.applications' EfficientNetB0 ... B7.
KERAS_TOP1 = (77.1, 79.1, 80.1, 81.6, 82.9, 83.6, 84.0, 84.3)
WEIGHTS["keras_applications"] = KerasApplicationsSource(
    applications={
        f"efficientnet_{variant}": f"EfficientNet{variant.upper()}"
        for variant in VARIANTS
    },
    files={
        f"efficientnet_{variant}": (
            f"efficientnet{variant}.h5",
            top1,
            KERAS_APPLICATIONS,
        )
        for variant, top1 in zip(VARIANTS, KERAS_TOP1, strict=True)
    },
    preprocessing=None,  # the model's own Rescaling and Normalization
    copy=efficientnet.load_keras_applications_weights,
    license="Apache-2.0 (keras.applications)",
)

# The levels of `keras_blocks.models.backbone`: the last trunk layer at
# each stride.
PYRAMID = PyramidSpec(
    {"stem": ConvBNAct, "block1a": MBConvBlock},
    r"stem|block\d+(?:[a-z]|_\d+)",
)

register_family(
    __name__,
    MODELS,
    pyramid=PYRAMID,
    min_size=MIN_SIZE,
    default_size=efficientnet.BASE_RESOLUTION,
    layouts=efficientnet.LAYOUTS,
    weights=WEIGHTS,
    default_sizes={
        f"efficientnet_{variant}": preset.resolution
        for variant, preset in efficientnet.PRESETS.items()
    },
    preprocessing=lambda options: None,  # the builder's include_preprocessing
)
