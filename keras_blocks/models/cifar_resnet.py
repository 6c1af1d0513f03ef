"""The CIFAR ResNets of the ResNet paper: ResNet-20/32/44/56/110 (depth 6n + 2).

A 3x3 convolution with 16 filters, then three stages of n basic residual blocks
at 32x32, 16x16 and 8x8 with 16, 32 and 64 filters, then global average
pooling and a 10-way classifier: 6n + 2 weighted layers. Where a stage halves
the resolution and doubles the width, the shortcut is the paper's option A:
subsample, then append zero channels, so the shortcuts add no parameters.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
section 4.2 (CIFAR-10 and Analysis).

    python -m examples.models --model cifar_resnet56 --smoke
"""

import functools

import keras

from keras_blocks import _validation as check
from keras_blocks import layers
from keras_blocks.models._common import classifier, image_input
from keras_blocks.models._registry import register_family
from keras_blocks.models.backbones import PyramidSpec

DEFAULT_SIZE = 32
MIN_SIZE = 4  # total stride 4
STAGE_FILTERS = (16, 32, 64)
STAGE_STRIDES = (1, 2, 2)
# The paper's depths, with their trainable parameters (its Table 6 rounds them
# to 0.27M, 0.46M, 0.66M, 0.85M and 1.7M).
DEPTHS = (
    20,  # 269,722
    32,  # 464,154
    44,  # 658,586
    56,  # 853,018
    110,  # 1,727,962
)


def CIFARResNet(
    depth=20,
    *,
    bn_synchronized: bool = False,
    include_top=True,
    classes=10,
    input_shape=None,
    pooling=None,
    classifier_activation="softmax",
    name=None,
):
    """A CIFAR ResNet of any depth `6n + 2` (20, 32, 44, 56, 110, ...).

    Args:
        bn_synchronized: bool. Synchronized batch normalization over the
            replicas of a `tf.distribute` strategy (TensorFlow); see
            `keras_blocks.layers.ConvBNAct`.
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            "Invalid value for argument `depth`. Expected 6n + 2 for an integer "
            f"n >= 1 (20, 32, 44, 56, 110, ...). Received: depth={depth!r}"
        )
    check.boolean("bn_synchronized", bn_synchronized)
    blocks_per_stage = (depth - 2) // 6
    inputs = image_input(input_shape, DEFAULT_SIZE, MIN_SIZE, "CIFARResNet")
    x = layers.ConvBNAct(
        STAGE_FILTERS[0], 3, bn_synchronized=bn_synchronized, name="conv1"
    )(inputs)  # (32, 32, 16)
    for stage, (filters, stride) in enumerate(
        zip(STAGE_FILTERS, STAGE_STRIDES, strict=True)
    ):
        for index in range(blocks_per_stage):
            x = layers.ResidualBlock(
                filters,
                strides=stride if index == 0 else 1,
                shortcut="zero_pad",  # option A; the identity where shapes match
                bn_synchronized=bn_synchronized,
                name=f"stage{stage + 1}_block{index + 1}",
            )(x)
    # (8, 8, 64) at 32x32 inputs
    outputs = classifier(x, include_top, classes, pooling, classifier_activation)
    return keras.Model(inputs, outputs, name=name or f"cifar_resnet{depth}")


MODELS = {
    f"cifar_resnet{depth}": functools.partial(CIFARResNet, depth) for depth in DEPTHS
}


# The levels of `keras_blocks.models.backbone`: the last trunk layer at
# each stride.
PYRAMID = PyramidSpec(
    {"conv1": layers.ConvBNAct, "stage1_block1": layers.ResidualBlock},
    r"conv1|stage\d+_block\d+",
    first_level=0,
)

register_family(
    __name__,
    MODELS,
    pyramid=PYRAMID,
    min_size=MIN_SIZE,
    default_size=DEFAULT_SIZE,
    preprocessing=lambda options: "unit",  # trained on pixels in [0, 1]
)
