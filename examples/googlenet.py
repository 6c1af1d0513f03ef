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

Two configurations:
- default: every convolution a bias-free conv-BN-ReLU unit (BN epsilon 1e-3,
  as torchvision), no LRN; 7,005,832 trainable parameters without the
  auxiliary classifiers. torchvision's GoogLeNet has the same units but 3x3
  convolutions in the 5x5 branches (a bug it keeps for its weights; 6,624,904
  trainable parameters), which `keras_blocks.layers.InceptionModule` does not
  offer.
- `batch_norm=False, lrn=True`: the 2014 paper's network (convolutions with
  biases and ReLU, LRN after the first pooling and after the 3x3 stem
  convolution). The paper gives no LRN constants; these are the BVLC Caffe
  GoogLeNet's (n = 5, k = 1, alpha = 1e-4 / n, beta = 0.75).
`aux_classifiers=True` adds the two auxiliary heads (5x5/3 average pooling,
1x1 convolution with 128 filters, a 1024-unit dense layer, dropout 0.7, the
classifier) as the second and third outputs, `aux1` and `aux2`; they need
inputs of at least 65x65 (a 5x5 map after 4a). The paper weights their losses
by 0.3:

    model = GoogLeNet(aux_classifiers=True)
    model.compile("sgd", ["sparse_categorical_crossentropy"] * 3,
                  loss_weights=(1.0, AUX_LOSS_WEIGHT, AUX_LOSS_WEIGHT))
    model.fit(images, (labels, labels, labels))
    predict = inference_model(model)   # the main output, the same weights

    python -m examples.googlenet --model googlenet --smoke
    python -m examples.train --model googlenet_aux --image-size 65 --epochs 1
"""

import functools

import keras

from examples._common import (
    POOLINGS,
    classifier,
    image_input,
    model_main,
)
from keras_blocks import _validation as check
from keras_blocks import layers

DEFAULT_SIZE = 224
MIN_SIZE = 32  # total stride 32 (smaller inputs reach 1x1 before stage 5)
AUX_MIN_SIZE = 65  # 5x5/3 average pooling on 4a's output, ceil(size / 16)
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
AUX_FILTERS, AUX_UNITS, AUX_DROPOUT = 128, 1024, 0.7
AUX_LOSS_WEIGHT = 0.3
BN_EPSILON = 1e-3
# BVLC Caffe's LRN in tf.nn.local_response_normalization's terms (Caffe divides
# alpha by n).
LRN = {"depth_radius": 2, "bias": 1.0, "alpha": 1e-4 / 5, "beta": 0.75}


def GoogLeNet(
    *,
    batch_norm=True,
    lrn=False,
    aux_classifiers=False,
    bn_synchronized=False,
    include_top=True,
    classes=1000,
    input_shape=None,
    pooling=None,
    classifier_activation="softmax",
    name=None,
):
    """GoogLeNet; with `aux_classifiers=True` three outputs: main, aux1, aux2.

    Args:
        bn_synchronized: bool. Synchronized batch normalization over the
            replicas of a `tf.distribute` strategy (TensorFlow); see
            `keras_blocks.layers.ConvBNAct`.
    """
    check.choice("pooling", pooling, POOLINGS)
    check.boolean("bn_synchronized", bn_synchronized)
    if include_top:
        check.positive_int("classes", classes)
    if aux_classifiers and not include_top:
        raise ValueError(
            "Invalid value for argument `aux_classifiers`. The auxiliary "
            "classifiers need include_top=True. Received: aux_classifiers=True, "
            "include_top=False"
        )
    inputs = image_input(
        input_shape,
        DEFAULT_SIZE,
        AUX_MIN_SIZE if aux_classifiers else MIN_SIZE,
        "GoogLeNet with auxiliary classifiers" if aux_classifiers else "GoogLeNet",
        flattens="aux_classifiers=True" if aux_classifiers else None,
    )
    bn = {"bn_epsilon": BN_EPSILON, "bn_synchronized": bn_synchronized}
    unit = functools.partial(layers.ConvBNAct, batch_norm=batch_norm, **bn)

    def pool(name):  # "same": each halves the size, rounding up
        return keras.layers.MaxPooling2D(3, strides=2, padding="same", name=name)

    # Stem.  # (56, 56, 192) -> (28, 28, 192) at 224x224
    x = unit(64, 7, strides=2, padding="symmetric", name="conv1")(inputs)
    x = pool("pool1")(x)
    if lrn:
        x = layers.LocalResponseNormalization(**LRN, name="norm1")(x)
    x = unit(64, 1, name="conv2_reduce")(x)
    x = unit(192, 3, name="conv2")(x)
    if lrn:
        x = layers.LocalResponseNormalization(**LRN, name="norm2")(x)
    x = pool("pool2")(x)

    aux_outputs = []
    for module, *filters in MODULES:
        x = layers.InceptionModule(
            *filters,
            batch_norm=batch_norm,
            **bn,
            name=f"inception_{module}",
        )(x)
        if aux_classifiers and module in AUX_AFTER:
            head = f"aux{len(aux_outputs) + 1}"
            aux_outputs.append(
                _aux_classifier(x, head, unit, classes, classifier_activation)
            )
        if module in POOL_AFTER:
            x = pool(f"pool{module[0]}")(x)

    outputs = classifier(
        x, include_top, classes, pooling, classifier_activation, dropout=DROPOUT
    )
    return keras.Model(
        inputs,
        [outputs, *aux_outputs] if aux_classifiers else outputs,
        name=name or _name(batch_norm, lrn, aux_classifiers),
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


def _name(batch_norm, lrn, aux_classifiers):
    flags = (("_no_bn", not batch_norm), ("_lrn", lrn), ("_aux", aux_classifiers))
    return "googlenet" + "".join(suffix for suffix, on in flags if on)


# Trainable parameters with 1000 classes; with aux_classifiers=True, 6,379,984
# more (torchvision's aux heads) with BN, 6,379,728 without.
MODELS = {
    "googlenet": GoogLeNet,  # 7,005,832
    # The 2014 paper's: biased convolutions, LRN, no BN.  # 6,998,552
    "googlenet_no_bn_lrn": functools.partial(GoogLeNet, batch_norm=False, lrn=True),
    # Three outputs (main, aux1, aux2) for training.  # 13,385,816
    "googlenet_aux": functools.partial(GoogLeNet, aux_classifiers=True),
}
# The models whose smallest input is not MIN_SIZE.
MIN_SIZES = {"googlenet_aux": AUX_MIN_SIZE}


def main(argv=None):
    return model_main(MODELS, __doc__.split("\n")[0], MIN_SIZE, argv, MIN_SIZES)


if __name__ == "__main__":
    main()
