"""GoogLeNet (Inception v1): nine Inception modules from the paper's table.

A stem (7x7/2 convolution, 3x3/2 max pooling, 1x1 and 3x3 convolutions, 3x3/2
max pooling), then Inception modules 3a-3b, 4a-4e and 5a-5b with 3x3/2 max
pooling between the groups, global average pooling, dropout 0.4 and the
classifier: 224 -> 112 -> 56 -> 28 -> 14 -> 7. Two auxiliary classifiers on
the outputs of 4a and 4d help train the lower layers; they are for training
only (`inference_model` drops them).

References:
    Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 (table 1,
    figure 3 and section 5).
    Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training
    by Reducing Internal Covariate Shift", ICML 2015.

Three configurations:
- default: every convolution a bias-free conv-BN-ReLU unit (BN epsilon 1e-3,
  as torchvision), no LRN; 7,005,832 trainable parameters without the
  auxiliary classifiers.
- `batch_norm=False, lrn=True`: the 2014 paper's network (convolutions with
  biases and ReLU, LRN after the first pooling and after the 3x3 stem
  convolution). The paper gives no LRN constants; these are the BVLC Caffe
  GoogLeNet's (n = 5, k = 1, alpha = 1e-4 / n, beta = 0.75).
- `layout="torchvision"`: torchvision's `googlenet(transform_input=True)`,
  the network of its ImageNet weights (`WEIGHTS["torchvision"]`, loaded by
  `get_model("googlenet_torchvision", weights=...)`); 6,624,904 trainable
  parameters.
  The default's units, with: 3x3 convolutions in the "5x5" branches (a bug
  torchvision keeps for its weights, pytorch/vision issue 906); max pooling
  in ceil mode (sizes rounded up without padding in front: 61 -> 31 -> 15 ->
  7 -> 3 -> 2, where "same" pooling gives 31 -> 16 -> 8 -> 4 -> 2); a 2x2/2
  fourth pooling; dropout 0.2; and its `transform_input` as the first layer,
  so the model takes torchvision's input (ImageNet mean/std-normalized RGB)
  and maps it to the (x - 0.5) / 0.5 scaling of the weights' original
  training.
`aux_classifiers=True` adds the two auxiliary heads (5x5/3 average pooling,
1x1 convolution with 128 filters, a 1024-unit dense layer, dropout 0.7, the
classifier) as the second and third outputs, `aux1` and `aux2`; they need
inputs of at least 65x65 (a 5x5 map after 4a; 79x79 with torchvision's
pooling). torchvision's heads pool adaptively to 4x4 and its file's are "NOT
pretrained": they are not loaded, and ours keep their starting weights. The
paper weights their losses by 0.3:

    model = GoogLeNet(aux_classifiers=True)
    model.compile("sgd", ["sparse_categorical_crossentropy"] * 3,
                  loss_weights=(1.0, AUX_LOSS_WEIGHT, AUX_LOSS_WEIGHT))
    model.fit(images, (labels, labels, labels))
    predict = inference_model(model)   # the main output, the same weights

    python -m examples.models --model googlenet --smoke
    python -m examples.train --model googlenet_aux --image-size 65 --epochs 1

torchvision's ImageNet weights (its `GoogLeNet_Weights.IMAGENET1K_V1`):

    from keras_blocks.models import get_model
    model = get_model("googlenet_torchvision", weights="googlenet-1378be20.pth")
    # inputs: RGB in [0, 1], normalized with the ImageNet mean and std (with
    # include_preprocessing=True, pixels in [0, 255])
"""

import functools
import re

import keras

from keras_blocks import _validation as check
from keras_blocks import layers
from keras_blocks.efficientnet import IMAGENET_MEAN, IMAGENET_STDDEV
from keras_blocks.models._common import (
    POOLINGS,
    classifier,
    image_input,
    renamed_layout,
)
from keras_blocks.models._registry import register_family
from keras_blocks.models._weights import WeightSource
from keras_blocks.models.backbones import PyramidSpec
from keras_blocks.porting import weight_layers

DEFAULT_SIZE = 224
MIN_SIZE = 32  # total stride 32 (smaller inputs reach 1x1 before stage 5)
AUX_MIN_SIZE = 65  # 5x5/3 average pooling on 4a's output, ceil(size / 16)
LAYOUTS = ("paper", "torchvision")
# torchvision's ceil-mode pooling keeps a 1x1 map down to the last pooling
# (15 -> 8 -> 4 -> 2 -> 1 -> 1: its weights' "min_size"); a 5x5 map after 4a
# needs 79 (40 -> 20 -> 10 -> 5).
TORCHVISION_MIN_SIZE, TORCHVISION_AUX_MIN_SIZE = 15, 79
# (name, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj): the paper's
# table 1; the output at 224x224 in the comment.
MODULES = (
    ("3a", 64, 96, 128, 16, 32, 32),  # (28, 28, 256)
    ("3b", 128, 128, 192, 32, 96, 64),  # (28, 28, 480) -> pool (14, 14)
    ("4a", 192, 96, 208, 16, 48, 64),  # (14, 14, 512) -> aux1
    ("4b", 160, 112, 224, 24, 64, 64),  # (14, 14, 512)
    ("4c", 128, 128, 256, 24, 64, 64),  # (14, 14, 512)
    ("4d", 112, 144, 288, 32, 64, 64),  # (14, 14, 528) -> aux2
    ("4e", 256, 160, 320, 32, 128, 128),  # (14, 14, 832) -> pool (7, 7)
    ("5a", 256, 160, 320, 32, 128, 128),  # (7, 7, 832)
    ("5b", 384, 192, 384, 48, 128, 128),  # (7, 7, 1024)
)
POOL_AFTER = ("3b", "4e")
AUX_AFTER = ("4a", "4d")
DROPOUT = 0.4
# torchvision: the "5x5" branches' kernel, the last pooling's, the dropout.
TORCHVISION_5X5, TORCHVISION_POOL4, TORCHVISION_DROPOUT = 3, 2, 0.2
# Its transform_input: x * std / 0.5 + (mean - 0.5) / 0.5 per channel, which
# turns ImageNet-normalized RGB, (rgb - mean) / std, into (rgb - 0.5) / 0.5.
# As a normalization (x - mean') / sqrt(variance'):
TRANSFORM_MEAN = tuple(
    (0.5 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STDDEV, strict=True)
)
TRANSFORM_VARIANCE = tuple((0.5 / s) ** 2 for s in IMAGENET_STDDEV)
AUX_FILTERS, AUX_UNITS, AUX_DROPOUT = 128, 1024, 0.7
AUX_LOSS_WEIGHT = 0.3
BN_EPSILON = 1e-3
# BVLC Caffe's LRN in tf.nn.local_response_normalization's terms (Caffe divides
# alpha by n).
LRN = {"depth_radius": 2, "bias": 1.0, "alpha": 1e-4 / 5, "beta": 0.75}


def GoogLeNet(
    *,
    layout: str = "paper",
    batch_norm=True,
    lrn=False,
    aux_classifiers=False,
    bn_synchronized: bool = False,
    include_top=True,
    classes=1000,
    input_shape=None,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    variant: str | None = None,
):
    """GoogLeNet; with `aux_classifiers=True` three outputs: main, aux1, aux2.

    Args:
        layout: str. `"paper"` (the paper's table, "same" pooling) or
            `"torchvision"` (the network of torchvision's weights; with BN and
            without LRN only).
        bn_synchronized: bool. Synchronized batch normalization over the
            replicas of a `tf.distribute` strategy (TensorFlow); see
            `keras_blocks.layers.ConvBNAct`.
        variant: str or None. Deprecated: `layout=`.
    """
    layout = renamed_layout("GoogLeNet", "variant", variant, layout)
    check.one_of("layout", layout, LAYOUTS)
    check.choice("pooling", pooling, POOLINGS)
    check.boolean("bn_synchronized", bn_synchronized)
    torchvision = layout == "torchvision"
    if torchvision and (not batch_norm or lrn):
        raise ValueError(
            "Invalid value for argument `layout`. torchvision's GoogLeNet "
            "has batch normalization and no LRN. Received: "
            f"layout='torchvision', batch_norm={batch_norm}, lrn={lrn}"
        )
    if include_top:
        check.positive_int("classes", classes)
    if aux_classifiers and not include_top:
        raise ValueError(
            "Invalid value for argument `aux_classifiers`. The auxiliary "
            "classifiers need include_top=True. Received: aux_classifiers=True, "
            "include_top=False"
        )
    if torchvision:
        min_size = TORCHVISION_AUX_MIN_SIZE if aux_classifiers else TORCHVISION_MIN_SIZE
    else:
        min_size = AUX_MIN_SIZE if aux_classifiers else MIN_SIZE
    inputs = image_input(
        input_shape,
        DEFAULT_SIZE,
        min_size,
        "GoogLeNet with auxiliary classifiers" if aux_classifiers else "GoogLeNet",
        flattens="aux_classifiers=True" if aux_classifiers else None,
    )
    bn = {"bn_epsilon": BN_EPSILON, "bn_synchronized": bn_synchronized}
    unit = functools.partial(layers.ConvBNAct, batch_norm=batch_norm, **bn)

    def pool(x, name, size=3):
        if not torchvision:  # "same": each halves the size, rounding up
            return keras.layers.MaxPooling2D(3, strides=2, padding="same", name=name)(x)
        # PyTorch's ceil mode: the last window may run past the bottom and
        # right edges. One row and column of zeros there, then valid pooling,
        # give its floor((size + 1 - kernel) / 2) + 1 for odd and even sizes;
        # zeros lose to no maximum here, since pooled inputs follow a ReLU.
        x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(x)
        return keras.layers.MaxPooling2D(size, strides=2, name=name)(x)

    x = inputs
    if torchvision:  # its transform_input, on the model's input
        x = layers.Normalization(
            axis=1 if keras.config.image_data_format() == "channels_first" else -1,
            mean=TRANSFORM_MEAN,
            variance=TRANSFORM_VARIANCE,
            name="transform_input",
        )(x)
    # Stem.  # (56, 56, 192) -> (28, 28, 192) at 224x224
    x = unit(64, 7, strides=2, padding="symmetric", name="conv1")(x)
    x = pool(x, "pool1")
    if lrn:
        x = layers.LocalResponseNormalization(**LRN, name="norm1")(x)
    x = unit(64, 1, name="conv2_reduce")(x)
    x = unit(192, 3, name="conv2")(x)
    if lrn:
        x = layers.LocalResponseNormalization(**LRN, name="norm2")(x)
    x = pool(x, "pool2")

    aux_outputs = []
    for module, *filters in MODULES:
        x = layers.InceptionModule(
            *filters,
            batch_norm=batch_norm,
            **bn,
            kernel_size_5x5=TORCHVISION_5X5 if torchvision else 5,
            name=f"inception_{module}",
        )(x)
        if aux_classifiers and module in AUX_AFTER:
            head = f"aux{len(aux_outputs) + 1}"
            aux_outputs.append(
                _aux_classifier(x, head, unit, classes, classifier_activation)
            )
        if module in POOL_AFTER:
            last = torchvision and module == POOL_AFTER[-1]
            x = pool(x, f"pool{module[0]}", TORCHVISION_POOL4 if last else 3)

    dropout = TORCHVISION_DROPOUT if torchvision else DROPOUT
    outputs = classifier(
        x, include_top, classes, pooling, classifier_activation, dropout=dropout
    )
    return keras.Model(
        inputs,
        [outputs, *aux_outputs] if aux_classifiers else outputs,
        name=name or _name(layout, batch_norm, lrn, aux_classifiers),
    )


def _aux_classifier(x, head, unit, classes, classifier_activation):
    # (14, 14, c) -> (4, 4, c) at 224x224
    x = keras.layers.AveragePooling2D(5, strides=3, name=f"{head}_pool")(x)
    x = unit(AUX_FILTERS, 1, name=f"{head}_conv")(x)
    x = keras.layers.Flatten(name=f"{head}_flatten")(x)  # (batch, 4 * 4 * 128)
    x = keras.layers.Dense(AUX_UNITS, activation="relu", name=f"{head}_fc")(x)
    x = layers.Dropout(AUX_DROPOUT, name=f"{head}_dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name=head)(x)


def inference_model(model):
    """The main output of a GoogLeNet alone, sharing its weights.

    A model without auxiliary classifiers is returned as it is.
    """
    if len(model.outputs) == 1:
        return model
    return keras.Model(model.input, model.outputs[0], name=model.name)


def _name(layout, batch_norm, lrn, aux_classifiers):
    flags = (
        ("_torchvision", layout == "torchvision"),
        ("_no_bn", not batch_norm),
        ("_lrn", lrn),
        ("_aux", aux_classifiers),
    )
    return "googlenet" + "".join(suffix for suffix, on in flags if on)


# Trainable parameters with 1000 classes; with aux_classifiers=True, 6,379,984
# more (torchvision's aux heads) with BN, 6,379,728 without.
MODELS = {
    "googlenet": GoogLeNet,  # 7,005,832
    # The 2014 paper's: biased convolutions, LRN, no BN.  # 6,998,552
    "googlenet_no_bn_lrn": functools.partial(GoogLeNet, batch_norm=False, lrn=True),
    # Three outputs (main, aux1, aux2) for training.  # 13,385,816
    "googlenet_aux": functools.partial(GoogLeNet, aux_classifiers=True),
    # torchvision's, for its ImageNet weights.  # 6,624,904
    "googlenet_torchvision": functools.partial(GoogLeNet, layout="torchvision"),
}
# The models whose smallest input is not MIN_SIZE.
MIN_SIZES = {
    "googlenet_aux": AUX_MIN_SIZE,
    "googlenet_torchvision": TORCHVISION_MIN_SIZE,
}


# Pretrained weights: our layers -> torchvision's modules. The stem's units are
# its conv1, conv2 (1x1) and conv3 (3x3); `inception_4a` is `inception4a`.
STEM_KEYS = {"conv1": "conv1", "conv2_reduce": "conv2", "conv2": "conv3"}
BRANCH_KEYS = {
    "branch1x1": "branch1",
    "branch3x3_reduce": "branch2.0",
    "branch3x3": "branch2.1",
    "branch5x5_reduce": "branch3.0",
    "branch5x5": "branch3.1",
    "branch_pool_proj": "branch4.1",  # branch4.0 is the pooling
}
INCEPTION = re.compile(r"inception_(\w+)/(\w+)/(conv|bn)")
AUX_HEAD = re.compile(r"aux\d(_.+)?")


def torchvision_mapping(model):
    """Keras layer path -> torchvision key prefix, for `layout="torchvision"`.

    The auxiliary heads, if any, keep their weights: torchvision's differ
    (adaptive pooling) and its file's are not pretrained.
    """
    _check_torchvision_layout(model)
    mapping = {}
    for path in weight_layers(model):
        top, _, rest = path.partition("/")
        if top in STEM_KEYS:
            mapping[path] = f"{STEM_KEYS[top]}.{rest}"  # conv1/bn -> conv1.bn
        elif match := INCEPTION.fullmatch(path):
            module, branch, leaf = match.groups()
            mapping[path] = f"inception{module}.{BRANCH_KEYS[branch]}.{leaf}"
        elif top == "predictions":
            mapping[path] = "fc"
        elif AUX_HEAD.fullmatch(top):
            mapping[path] = None
    return mapping


def _check_torchvision_layout(model):
    """Refuses a GoogLeNet that is not torchvision's: its pooling and input
    scaling have no weights, so the file's shapes alone do not tell."""
    names = {layer.name: layer for layer in model.layers}
    differences = []
    if "transform_input" not in names:
        differences.append("no transform_input layer")
    for layer in model.layers:
        if isinstance(layer, layers.InceptionModule):
            if layer.kernel_size_5x5 != (TORCHVISION_5X5,) * 2:
                height, width = layer.kernel_size_5x5
                differences.append(
                    f"{height}x{width} convolutions in the 5x5 branches "
                    "(torchvision's: 3x3)"
                )
            break
    if "pool1_pad" not in names:
        differences.append("'same' max pooling (torchvision's: ceil mode)")
    pool4 = names.get("pool4")
    if pool4 is not None and pool4.pool_size != (TORCHVISION_POOL4,) * 2:
        differences.append("a 3x3 fourth max pooling (torchvision's: 2x2)")
    if differences:
        raise ValueError(
            f"Model '{model.name}' is not torchvision's GoogLeNet: it has "
            f"{'; '.join(differences)}."
        )


_TORCHVISION_FILES = {
    # MODELS name: (the file torchvision downloads, its top-1, build options)
    "googlenet_torchvision": ("googlenet-1378be20.pth", 69.778, {}),
}
WEIGHTS = {
    "torchvision": WeightSource(
        mapping=torchvision_mapping,
        bn_epsilon=BN_EPSILON,
        head=("fc.",),
        layout='Build torchvision\'s variant: GoogLeNet(layout="torchvision").',
        files=_TORCHVISION_FILES,
        # Its file holds the auxiliary heads, which it says are "NOT pretrained".
        ignored=("aux1.", "aux2."),
    ),
}


# The levels of `keras_blocks.models.backbone`: the last trunk layer at
# each stride.
PYRAMID = PyramidSpec(
    {"conv1": layers.ConvBNAct, "inception_5b": layers.InceptionModule},
    r"conv1|conv2_reduce|conv2|norm\d|pool\d|inception_\w+",
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
)
