"""AlexNet: five convolutions, three fully connected layers, from one table.

An 11x11/4 convolution, then 5x5 and three 3x3 convolutions, each with ReLU;
local response normalization after the first two; overlapping 3x3/2 max
pooling after the first, second and fifth; then two 4096-unit fully connected
layers with dropout 0.5 and the classifier. The paper's 224x224 input is 227x227
in fact (the first convolution is unpadded: (227 - 11) / 4 + 1 = 55).

References:
    Krizhevsky et al., "ImageNet Classification with Deep Convolutional Neural
    Networks", NeurIPS 2012 (sections 3.3-3.5 and 4.2, figure 2).
    Krizhevsky, "One weird trick for parallelizing convolutional neural
    networks", arXiv:1404.5997, 2014 (torchvision's variant).

The paper trains one network split over two GPUs: conv2, conv4 and conv5 only
see the kernel maps on their own GPU, which is a convolution with two groups
(conv3 and the fully connected layers see both). Three configurations:
- `groups=2` (the paper's default): the paper's network, 60,965,224
  parameters (its "60 million"). No published weights.
- `groups=1`: the same layers, ungrouped (the "one GPU" AlexNet of later
  reimplementations, with the paper's widths), 62,378,344 parameters. No
  published weights.
- `layout="torchvision"`: torchvision's `alexnet` (the "one weird trick"
  network): 64, 192, 384, 256 and 256 filters, ungrouped, no LRN, the first
  convolution padded by 2, 224x224 inputs, dropout before fc6 and fc7 (not
  after them); 61,100,840 parameters, as torchvision's. Its ImageNet weights
  load from torchvision's file (below).
LRN is `tf.nn.local_response_normalization`'s with the paper's n = 5, k = 2,
alpha = 1e-4, beta = 0.75 (`lrn=False` drops it). The initialization is He's
for the convolutions and Glorot's for the dense layers, not the paper's
N(0, 0.01) with unit biases.

    python -m examples.models --model alexnet --smoke

Load torchvision's ImageNet weights (56.522% top-1), downloaded from
https://download.pytorch.org/models/alexnet-owt-7be5be79.pth:

    from keras_blocks.models import get_model
    model = get_model("alexnet_torchvision", weights="alexnet-owt-7be5be79.pth")
    # inputs: RGB in [0, 1], minus the mean (0.485, 0.456, 0.406), divided by
    # the standard deviation (0.229, 0.224, 0.225) (torchvision's transforms:
    # resize to 256, center crop 224); with include_preprocessing=True,
    # pixels in [0, 255]
"""

import functools

import keras

from keras_blocks import _validation as check
from keras_blocks import layers
from keras_blocks.models._common import (
    POOLINGS,
    classifier,
    dense_head,
    image_input,
    renamed_layout,
)
from keras_blocks.models._registry import register_family
from keras_blocks.models._weights import WeightSource, flattened
from keras_blocks.models.backbones import PyramidSpec
from keras_blocks.porting import weight_layers

DEFAULT_SIZE = 227
# The smallest input whose last pooling still sees a 3x3 map:
# 67 -> conv1 15 -> pool1 7 -> pool2 3 -> pool5 1.
MIN_SIZE = 67
# (filters, kernel, stride, padding, grouped in the paper, LRN after, max pooling
# after); the output at 227x227 in the comment.
CONVOLUTIONS = (
    (96, 11, 4, "valid", False, True, True),  # conv1 (55, 55, 96) -> (27, 27)
    (256, 5, 1, "same", True, True, True),  # conv2 (27, 27, 256) -> (13, 13)
    (384, 3, 1, "same", False, False, False),  # conv3 (13, 13, 384)
    (384, 3, 1, "same", True, False, False),  # conv4 (13, 13, 384)
    (256, 3, 1, "same", True, False, True),  # conv5 (13, 13, 256) -> (6, 6)
)
# torchvision's variant, the same columns (an int padding: that many zeros on
# each side, as torch pads); the output at 224x224 in the comment.
TORCHVISION_CONVOLUTIONS = (
    (64, 11, 4, 2, False, False, True),  # conv1 (55, 55, 64) -> (27, 27)
    (192, 5, 1, "same", False, False, True),  # conv2 (27, 27, 192) -> (13, 13)
    (384, 3, 1, "same", False, False, False),  # conv3 (13, 13, 384)
    (256, 3, 1, "same", False, False, False),  # conv4 (13, 13, 256)
    (256, 3, 1, "same", False, False, True),  # conv5 (13, 13, 256) -> (6, 6)
)
LAYOUTS = ("paper", "torchvision")
TORCHVISION_SIZE = 224
# 63 -> conv1 15 -> pool1 7 -> pool2 3 -> pool5 1 (torchvision's min_size)
TORCHVISION_MIN_SIZE = 63
MIN_SIZES = {"alexnet_torchvision": TORCHVISION_MIN_SIZE}
FC_UNITS = 4096
DROPOUT = 0.5
# groups: parameters with 1000 classes (the paper's variant)
GROUPS = {
    1: 62_378_344,
    2: 60_965_224,  # the paper's two-GPU network
}
TORCHVISION_PARAMS = 61_100_840  # torchvision's alexnet


def AlexNet(
    *,
    layout: str = "paper",
    groups: int | None = None,
    lrn: bool | None = None,
    include_top=True,
    classes=1000,
    input_shape=None,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    variant: str | None = None,
):
    """AlexNet, the paper's (`layout="paper"`, with its two-GPU grouping,
    `groups=2`, or without) or torchvision's (`layout="torchvision"`).

    Only torchvision's variant has published weights (`WEIGHTS`).

    Args:
        layout: str. `"paper"` (the default: 96, 256, 384, 384 and 256
            filters, LRN, 227x227 inputs) or `"torchvision"` (64, 192, 384,
            256 and 256 filters, ungrouped, no LRN, 224x224 inputs).
        groups: int or None. 2 (the paper's two-GPU split of conv2, conv4 and
            conv5) or 1; None: the variant's (2 for the paper's, 1 for
            torchvision's, which takes no other).
        lrn: bool or None. LRN after conv1 and conv2; None: the variant's
            (on for the paper's, off for torchvision's, which takes no other).
        variant: str or None. Deprecated: `layout=`.

    Raises:
        ValueError: an unknown `layout`, `groups` other than 1 or 2, a
            non-boolean `lrn`, or `groups=2` or `lrn=True` with torchvision's
            variant.
    """
    layout = renamed_layout("AlexNet", "variant", variant, layout)
    check.one_of("layout", layout, LAYOUTS)
    check.optional(check.choice, "groups", groups, tuple(GROUPS))
    check.optional(check.boolean, "lrn", lrn)
    torchvision = layout == "torchvision"
    for argument, value, own in (("groups", groups, 1), ("lrn", lrn, False)):
        if torchvision and value not in (None, own):
            raise ValueError(
                f"Invalid value for argument `{argument}`. torchvision's AlexNet "
                f"(layout='torchvision') takes {argument}={own} or None. "
                f"Received: {argument}={value!r}"
            )
    groups = groups or (1 if torchvision else 2)
    lrn = (not torchvision) if lrn is None else lrn
    check.choice("pooling", pooling, POOLINGS)
    if include_top:
        check.positive_int("classes", classes)
    name = name or _name(layout, groups, lrn)
    inputs = image_input(
        input_shape,
        TORCHVISION_SIZE if torchvision else DEFAULT_SIZE,
        TORCHVISION_MIN_SIZE if torchvision else MIN_SIZE,
        "AlexNet",
        flattens="include_top=True" if include_top else None,
    )

    x = inputs
    rows = TORCHVISION_CONVOLUTIONS if torchvision else CONVOLUTIONS
    for index, row in enumerate(rows, start=1):
        filters, kernel, stride, padding, grouped, norm_after, pool_after = row
        if isinstance(padding, int):  # torch's symmetric padding
            x = keras.layers.ZeroPadding2D(padding, name=f"conv{index}_pad")(x)
            padding = "valid"
        x = layers.ConvBNAct(
            filters,
            kernel,
            strides=stride,
            padding=padding,
            groups=groups if grouped else 1,
            batch_norm=False,
            use_bias=True,
            name=f"conv{index}",
        )(x)
        if norm_after and lrn:  # the layer's defaults are the paper's
            x = layers.LocalResponseNormalization(name=f"norm{index}")(x)
        if pool_after:  # overlapping pooling: 3x3 windows, stride 2
            x = keras.layers.MaxPooling2D(3, strides=2, name=f"pool{index}")(x)

    if not include_top:
        outputs = classifier(x, False, classes, pooling, classifier_activation)
        return keras.Model(inputs, outputs, name=name)
    if torchvision:  # dropout before fc6 and fc7, as torchvision's classifier
        x = keras.layers.Flatten(name="flatten")(x)  # (batch, 6 * 6 * 256) at 224
        for index in (6, 7):
            x = layers.Dropout(DROPOUT, name=f"drop{index}")(x)
            x = keras.layers.Dense(FC_UNITS, activation="relu", name=f"fc{index}")(x)
        outputs = keras.layers.Dense(
            classes, activation=classifier_activation, name="predictions"
        )(x)
        return keras.Model(inputs, outputs, name=name)
    # Flattens (batch, 6 * 6 * 256) at 227.
    names = (("fc6", "drop6"), ("fc7", "drop7"))
    outputs = dense_head(x, FC_UNITS, DROPOUT, names, classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


def _name(layout, groups, lrn):
    if layout == "torchvision":
        return "alexnet_torchvision"
    return f"alexnet{'' if groups == 2 else '_ungrouped'}{'' if lrn else '_no_lrn'}"


MODELS = {
    "alexnet": AlexNet,
    "alexnet_ungrouped": functools.partial(AlexNet, groups=1),
    "alexnet_no_lrn": functools.partial(AlexNet, lrn=False),
    "alexnet_torchvision": functools.partial(AlexNet, layout="torchvision"),
}


# Pretrained weights: torchvision's `features.{0,3,6,8,10}` (each convolution
# followed by its ReLU, and a pooling after the first, second and fifth) and
# `classifier.{1,4,6}` (Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear).
TORCHVISION_KEYS = {
    "conv1/conv": "features.0",
    "conv2/conv": "features.3",
    "conv3/conv": "features.6",
    "conv4/conv": "features.8",
    "conv5/conv": "features.10",
    "fc7": "classifier.4",
    "predictions": "classifier.6",
}
# torchvision's AdaptiveAvgPool2d((6, 6)) before the flatten: an identity on
# the 6x6 map of 224x224 inputs, which the flatten sizes then agree with.
TORCHVISION_FEATURES = (256, 6, 6)  # (channels, height, width)


def torchvision_mapping(model):
    """Keras layer path -> torchvision key prefix, for `layout="torchvision"`
    (torchvision's `alexnet`); raises ValueError for another layout."""
    paths = weight_layers(model)
    conv1 = paths.get("conv1/conv")
    if (
        conv1 is None
        or conv1.filters != 64
        or any(getattr(layer, "groups", 1) != 1 for layer in paths.values())
        or any(
            isinstance(layer, layers.LocalResponseNormalization)
            for layer in model.layers
        )
    ):
        raise ValueError(
            "torchvision's AlexNet is the 'one weird trick' variant (64 "
            "filters in conv1, ungrouped, no LRN); the paper's has no published "
            f"weights. Received: model '{model.name}'."
        )
    mapping = {}
    for path in paths:
        if path == "fc6":
            mapping[path] = flattened(
                model,
                "classifier.1",
                TORCHVISION_FEATURES,
                "torchvision's AlexNet",
                TORCHVISION_SIZE,
            )
        elif path in TORCHVISION_KEYS:
            mapping[path] = TORCHVISION_KEYS[path]
    return mapping


_TORCHVISION_FILES = {
    # MODELS name: (the file torchvision downloads, its top-1, build options)
    "alexnet_torchvision": ("alexnet-owt-7be5be79.pth", 56.522, {}),
}
WEIGHTS = {
    "torchvision": WeightSource(
        mapping=torchvision_mapping,
        bn_epsilon=None,  # no batch normalization
        head=("classifier.",),
        layout=(
            "Build AlexNet(layout='torchvision') at 224x224 (the default "
            "input_shape) for torchvision's weights."
        ),
        files=_TORCHVISION_FILES,
    ),
}


# The levels of `keras_blocks.models.backbone`: the last trunk layer at
# each stride.
PYRAMID = PyramidSpec(
    {
        "conv1": layers.ConvBNAct,
        "conv5": layers.ConvBNAct,
        "pool5": keras.layers.MaxPooling2D,
    },
    r"conv\d|norm\d|pool\d",
)

register_family(
    __name__,
    MODELS,
    pyramid=PYRAMID,
    min_size=MIN_SIZE,
    default_size=DEFAULT_SIZE,
    layouts=LAYOUTS,
    weights=WEIGHTS,
    min_sizes=MIN_SIZES,
    default_sizes={"alexnet_torchvision": TORCHVISION_SIZE},
)
