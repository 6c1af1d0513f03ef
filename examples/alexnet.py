"""AlexNet: five convolutions, three fully connected layers, from one table.

An 11x11/4 convolution, then 5x5 and three 3x3 convolutions, each with ReLU;
local response normalization after the first two; overlapping 3x3/2 max
pooling after the first, second and fifth; then two 4096-unit fully connected
layers with dropout 0.5 and the classifier. The paper's 224x224 input is 227x227
in fact (the first convolution is unpadded: (227 - 11) / 4 + 1 = 55).

Reference:
    Krizhevsky et al., "ImageNet Classification with Deep Convolutional Neural
    Networks", NeurIPS 2012 (sections 3.3-3.5 and 4.2, figure 2).

The paper trains one network split over two GPUs: conv2, conv4 and conv5 only
see the kernel maps on their own GPU, which is a convolution with two groups
(conv3 and the fully connected layers see both). Two configurations:
- `groups=2` (default): the paper's network, 60,965,224 parameters (its "60
  million").
- `groups=1`: the same layers, ungrouped (the "one GPU" AlexNet of later
  reimplementations, with the paper's widths), 62,378,344 parameters.
LRN is `tf.nn.local_response_normalization`'s with the paper's n = 5, k = 2,
alpha = 1e-4, beta = 0.75 (`lrn=False` drops it). The initialization is He's
for the convolutions and Glorot's for the dense layers, not the paper's
N(0, 0.01) with unit biases.

    python -m examples.alexnet --model alexnet --smoke
"""

import functools

import keras

from examples._common import (
    POOLINGS,
    classifier,
    dense_head,
    image_input,
    model_main,
)
from keras_blocks import _validation as check
from keras_blocks import layers

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
FC_UNITS = 4096
DROPOUT = 0.5
# groups: parameters with 1000 classes
GROUPS = {
    1: 62_378_344,
    2: 60_965_224,  # the paper's two-GPU network
}


def AlexNet(
    *,
    groups=2,
    lrn=True,
    include_top=True,
    classes=1000,
    input_shape=None,
    pooling=None,
    classifier_activation="softmax",
    name=None,
):
    """AlexNet, with the paper's two-GPU grouping (`groups=2`) or without."""
    check.choice("groups", groups, GROUPS)
    check.choice("pooling", pooling, POOLINGS)
    if include_top:
        check.positive_int("classes", classes)
    inputs = image_input(
        input_shape,
        DEFAULT_SIZE,
        MIN_SIZE,
        "AlexNet",
        flattens="include_top=True" if include_top else None,
    )

    x = inputs
    for index, row in enumerate(CONVOLUTIONS, start=1):
        filters, kernel, stride, padding, grouped, norm_after, pool_after = row
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
        return keras.Model(inputs, outputs, name=name or _name(groups, lrn))
    # Flattens (batch, 6 * 6 * 256) at 227.
    names = (("fc6", "drop6"), ("fc7", "drop7"))
    outputs = dense_head(x, FC_UNITS, DROPOUT, names, classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name or _name(groups, lrn))


def _name(groups, lrn):
    return f"alexnet{'' if groups == 2 else '_ungrouped'}{'' if lrn else '_no_lrn'}"


MODELS = {
    "alexnet": AlexNet,
    "alexnet_ungrouped": functools.partial(AlexNet, groups=1),
    "alexnet_no_lrn": functools.partial(AlexNet, lrn=False),
}


def main(argv=None):
    return model_main(MODELS, __doc__.split("\n")[0], MIN_SIZE, argv)


if __name__ == "__main__":
    main()
