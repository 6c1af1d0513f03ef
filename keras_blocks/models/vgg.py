"""VGG-11/13/16/19 (configurations A to E) and their BN variants, from one table.

Five stages of 3x3 convolutions with ReLU, each ending in 2x2 max pooling,
with 64, 128, 256, 512 and 512 filters; then two 4096-unit fully connected
layers with dropout 0.5 and the classifier. Depth only changes how many
convolutions each stage has; two flags give the paper's other configurations:
- `lrn=True`: local response normalization after the first convolution (its
  ReLU included), with AlexNet's parameters, as the paper takes them:
  configuration A-LRN with depth 11. No weights.
- `last_1x1=True`: the last convolution of stages 3, 4 and 5 is 1x1
  (configuration C with depth 16, "conv1-256" and "conv1-512" in table 1).

Reference:
    Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale
    Image Recognition", ICLR 2015 (table 1, configurations A, A-LRN, B, C, D,
    E; table 2, their parameters).

Two configurations:
- the paper's (default): the layer names, weight order and parameters of
  `keras.applications.VGG16` and `VGG19` (`block{i}_conv{j}`, `block{i}_pool`,
  `flatten`, `fc1`, `fc2`, `predictions`), plus the paper's dropout after `fc1`
  and `fc2` (no weights). Their ImageNet weights load with `set_weights`.
- `batch_norm=True`: BN between each convolution and its ReLU, as
  torchvision's `vgg*_bn` (whose trainable parameters these are: the
  convolutions keep their biases).
The convolutions start from He's initialization (the paper pretrained the
deeper configurations from A); the dense layers from Glorot's.

The named models are the paper's configurations and torchvision's BN
variants of A, B, D and E. A-LRN and C have no named BN variant: BN after
each convolution does the normalizing that LRN was there for (the flags still
combine, `VGG(11, lrn=True, batch_norm=True)`, but that is no published
network), and no reference implementation has a C-BN to check one against.

    python -m examples.models --model vgg16 --smoke

Load ImageNet weights from keras.applications (downloaded once; the same
layers in the same order, so they load with `set_weights`), with their
preprocessing (BGR, mean-centered: `vgg16.preprocess_input`) inside:

    from keras_blocks.models import get_model
    model = get_model("vgg16", weights="imagenet", include_preprocessing=True)

Load torchvision's ImageNet weights (VGG-11/13/16/19 and their `_bn`
variants; files and top-1 in `_TORCHVISION_FILES`), downloaded from
https://download.pytorch.org/models/ (e.g. vgg16-397923af.pth):

    from keras_blocks.models import get_model
    model = get_model("vgg16", weights="vgg16-397923af.pth")   # 224x224
    # inputs: RGB in [0, 1], minus the mean (0.485, 0.456, 0.406), divided by
    # the standard deviation (0.229, 0.224, 0.225) (torchvision's transforms:
    # resize to 256, center crop 224)

torchvision's layers are these (3x3 convolutions padded by 1, with biases,
BN with epsilon 1e-5 before the ReLU, 2x2/2 max pooling, dropout after the
ReLU of fc1 and fc2); its `AdaptiveAvgPool2d((7, 7))` before the flatten
changes nothing at 224x224, the size the weights need with the top (without
it, `include_top=False`, any size).
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
)
from keras_blocks.models._registry import register_family
from keras_blocks.models._weights import (
    KerasApplicationsSource,
    WeightSource,
    flattened,
)
from keras_blocks.models.backbones import PyramidSpec
from keras_blocks.porting import weight_layers

DEFAULT_SIZE = 224
MIN_SIZE = 32  # five 2x2 poolings: 32 -> 1
STAGE_FILTERS = (64, 128, 256, 512, 512)
# depth: convolutions per stage  # (configuration) parameters with 1000 classes;
# trainable parameters with batch_norm=True (= torchvision's vgg*_bn)
DEPTHS = {
    # lrn=True (A-LRN): 132,863,336, the paper's 133 M (LRN has no weights)
    11: (1, 1, 2, 2, 2),  # (A) 132,863,336; 132,868,840
    13: (2, 2, 2, 2, 2),  # (B) 133,047,848; 133,053,736
    # last_1x1=True (C): 133,638,952, the paper's 134 M
    16: (2, 2, 3, 3, 3),  # (D) 138,357,544; 138,365,992
    19: (2, 2, 4, 4, 4),  # (E) 143,667,240; 143,678,248
}
# last_1x1=True: the stages whose last convolution is 1x1 (configuration C)
LAST_1X1_STAGES = (3, 4, 5)
FC_UNITS = 4096
DROPOUT = 0.5


def VGG(
    depth=16,
    *,
    batch_norm=False,
    lrn=False,
    last_1x1=False,
    bn_synchronized: bool = False,
    include_top=True,
    classes=1000,
    input_shape=None,
    pooling=None,
    classifier_activation="softmax",
    name=None,
):
    """A VGG of `depth` 11, 13, 16 or 19; `batch_norm=True` gives VGG-BN,
    `lrn=True` LRN after the first convolution (A-LRN with depth 11),
    `last_1x1=True` 1x1 last convolutions in stages 3-5 (C with depth 16).

    Args:
        bn_synchronized: bool. Synchronized batch normalization over the
            replicas of a `tf.distribute` strategy (TensorFlow); see
            `keras_blocks.layers.ConvBNAct`.
    """
    check.choice("depth", depth, DEPTHS)
    check.boolean("batch_norm", batch_norm)
    check.boolean("lrn", lrn)
    check.boolean("last_1x1", last_1x1)
    check.boolean("bn_synchronized", bn_synchronized)
    check.choice("pooling", pooling, POOLINGS)
    if include_top:
        check.positive_int("classes", classes)
    name = name or _name(depth, batch_norm, lrn, last_1x1)
    inputs = image_input(
        input_shape,
        DEFAULT_SIZE,
        MIN_SIZE,
        "VGG",
        flattens="include_top=True" if include_top else None,
    )

    x = inputs
    for stage, (filters, convs) in enumerate(
        zip(STAGE_FILTERS, DEPTHS[depth], strict=True), start=1
    ):
        for index in range(1, convs + 1):
            one_by_one = last_1x1 and index == convs and stage in LAST_1X1_STAGES
            x = layers.ConvBNAct(
                filters,
                1 if one_by_one else 3,
                batch_norm=batch_norm,
                bn_synchronized=bn_synchronized,
                use_bias=True,  # keras.applications' and torchvision's
                name=f"block{stage}_conv{index}",
            )(x)
            if lrn and (stage, index) == (1, 1):  # the layer's defaults: AlexNet's
                x = layers.LocalResponseNormalization(name="block1_lrn")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{stage}_pool")(x)
    # (7, 7, 512) at 224x224 inputs

    if not include_top:
        outputs = classifier(x, False, classes, pooling, classifier_activation)
        return keras.Model(inputs, outputs, name=name)
    # Flattens (batch, 7 * 7 * 512) at 224.
    names = (("fc1", "fc1_dropout"), ("fc2", "fc2_dropout"))
    outputs = dense_head(x, FC_UNITS, DROPOUT, names, classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


def _name(depth, batch_norm, lrn, last_1x1):
    flags = (("_lrn", lrn), ("_1x1", last_1x1), ("_bn", batch_norm))
    return f"vgg{depth}" + "".join(suffix for suffix, on in flags if on)


MODELS = {
    **{f"vgg{d}": functools.partial(VGG, d) for d in DEPTHS},
    **{f"vgg{d}_bn": functools.partial(VGG, d, batch_norm=True) for d in DEPTHS},
    "vgg11_lrn": functools.partial(VGG, 11, lrn=True),  # A-LRN
    "vgg16_1x1": functools.partial(VGG, 16, last_1x1=True),  # C
}


# Pretrained weights: torchvision's `features` is one Sequential of conv,
# [BN,] ReLU per convolution and a max pooling per stage, so the indices
# shift with BN (vgg16: 0, 2, 5, 7, 10, ...; vgg16_bn: 0, 3, 7, 10, 14, ...);
# `classifier.{0,3,6}` are fc1 (on the flattened 512x7x7 map), fc2 and the
# classifier (each Linear followed by ReLU and Dropout but the last).
TORCHVISION_CLASSIFIER = {"fc2": "classifier.3", "predictions": "classifier.6"}
# torchvision's AdaptiveAvgPool2d((7, 7)) before the flatten: an identity on
# the 7x7 map of 224x224 inputs, which the flatten sizes then agree with.
TORCHVISION_FEATURES = (512, 7, 7)  # (channels, height, width)
TORCHVISION_SIZE = 224


def torchvision_keys(depth, batch_norm):
    """{Keras layer path: torchvision key prefix} of the convolutions (and
    their BN) of torchvision's `vgg{depth}` or `vgg{depth}_bn`."""
    keys, index = {}, 0
    for stage, convs in enumerate(DEPTHS[depth], start=1):
        for conv in range(1, convs + 1):
            keys[f"block{stage}_conv{conv}/conv"] = f"features.{index}"
            if batch_norm:
                keys[f"block{stage}_conv{conv}/bn"] = f"features.{index + 1}"
            index += 3 if batch_norm else 2  # conv, [BN,] ReLU
        index += 1  # the stage's max pooling
    return keys


def torchvision_mapping(model):
    """Keras layer path -> torchvision key prefix, for `VGG(depth)` and
    `VGG(depth, batch_norm=True)` (torchvision's `vgg*`, `vgg*_bn`); raises
    ValueError for another layout."""
    paths = weight_layers(model)
    convs = [layer for path, layer in paths.items() if path.endswith("/conv")]
    if any(layer.name == "block1_lrn" for layer in model.layers) or any(
        conv.kernel_size != (3, 3) for conv in convs
    ):
        raise ValueError(
            "torchvision publishes no VGG with LRN (lrn=True) or 1x1 "
            f"convolutions (last_1x1=True). Received: model '{model.name}'."
        )
    depth = {sum(repeats): d for d, repeats in DEPTHS.items()}.get(len(convs))
    if depth is None:
        raise ValueError(
            f"A VGG has 8, 10, 13 or 16 convolutions. Received: model "
            f"'{model.name}' with {len(convs)}."
        )
    batch_norm = any(path.endswith("/bn") for path in paths)
    mapping = torchvision_keys(depth, batch_norm)
    for path in paths:
        if path == "fc1":
            mapping[path] = flattened(
                model,
                "classifier.0",
                TORCHVISION_FEATURES,
                "torchvision's VGG",
                TORCHVISION_SIZE,
            )
        elif path in TORCHVISION_CLASSIFIER:
            mapping[path] = TORCHVISION_CLASSIFIER[path]
    return mapping


_TORCHVISION_FILES = {
    # MODELS name: (the file torchvision downloads, its top-1, build options)
    "vgg11": ("vgg11-8a719046.pth", 69.020, {}),
    "vgg11_bn": ("vgg11_bn-6002323d.pth", 70.370, {}),
    "vgg13": ("vgg13-19584684.pth", 69.928, {}),
    "vgg13_bn": ("vgg13_bn-abd245e5.pth", 71.586, {}),
    "vgg16": ("vgg16-397923af.pth", 71.592, {}),
    "vgg16_bn": ("vgg16_bn-6c64b313.pth", 73.360, {}),
    "vgg19": ("vgg19-dcbb9e9d.pth", 72.376, {}),
    "vgg19_bn": ("vgg19_bn-c79401a0.pth", 74.218, {}),
}
WEIGHTS = {
    "torchvision": WeightSource(
        mapping=torchvision_mapping,
        bn_epsilon=1e-5,  # vgg*_bn's (ConvBNAct's default)
        head=("classifier.",),
        layout=(
            "Build VGG(depth), or VGG(depth, batch_norm=True) for vgg*_bn, "
            "with lrn=False and last_1x1=False (the defaults), at 224x224 (the "
            "default input_shape) for torchvision's weights."
        ),
        files=_TORCHVISION_FILES,
    ),
    "keras_applications": KerasApplicationsSource(
        applications={"vgg16": "VGG16", "vgg19": "VGG19"},
        files={
            # MODELS name: (the file keras.applications downloads, its top-1
            # as keras.io's table gives it, build options)
            "vgg16": ("vgg16_weights_tf_dim_ordering_tf_kernels.h5", 71.3, {}),
            "vgg19": ("vgg19_weights_tf_dim_ordering_tf_kernels.h5", 71.3, {}),
        },
        preprocessing="caffe",
        license="CC BY 4.0 (the VGG authors' weights, as keras.applications)",
    ),
}


# The levels of `keras_blocks.models.backbone`: the last trunk layer at
# each stride.
PYRAMID = PyramidSpec(
    {"block5_conv1": layers.ConvBNAct, "block5_pool": keras.layers.MaxPooling2D},
    r"block\d+_(?:conv\d+|lrn|pool)",
)

register_family(
    __name__,
    MODELS,
    min_size=MIN_SIZE,
    default_size=DEFAULT_SIZE,
    weights=WEIGHTS,
    pyramid=PYRAMID,
)
