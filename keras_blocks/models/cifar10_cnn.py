"""The classic CIFAR-10 CNN from the course notes this project started from.

Three stages of two 3x3 convolution-BN-ReLU units (32, 64 and 128 filters),
each stage followed by 2x2 max pooling, then global average pooling (or, to
compare, the Flatten of the original notes), dropout 0.5, a 50-unit ReLU
layer, dropout 0.2 and a softmax classifier. The switches the course compares
are arguments: `flatten`, `l2` (weight decay on every kernel),
`kernel_initializer` (He or Xavier), `filters` (the first stage's; each stage
doubles it), `convs_per_stage` (depth) and `downsampling` (max pooling or
stride-2 convolutions); examples/course_experiments.py trains them.

References:
    Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training
    by Reducing Internal Covariate Shift", ICML 2015.
    Lin et al., "Network In Network", ICLR 2014 (global average pooling).
    Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
    Overfitting", JMLR 2014.
    Glorot & Bengio, "Understanding the difficulty of training deep
    feedforward neural networks", AISTATS 2010 (Xavier initialization).
    He et al., "Delving Deep into Rectifiers", ICCV 2015 (He initialization).

    python -m examples.models --model cifar10_cnn --smoke
"""

import functools

import keras

from keras_blocks import _validation as check
from keras_blocks import layers
from keras_blocks.models._common import POOLINGS, image_input
from keras_blocks.models._registry import register_family
from keras_blocks.models.backbones import PyramidSpec

DEFAULT_SIZE = 32
MIN_SIZE = 8  # three 2x2 max poolings
FILTERS = 32  # of the first stage; then 64 and 128
STAGES = 3
CONVS_PER_STAGE = 2
DOWNSAMPLINGS = ("max_pool", "strided_conv")
HIDDEN_UNITS = 50
DROPOUT = 0.5  # before the hidden layer
HIDDEN_DROPOUT = 0.2  # before the classifier
# Parameters at 32x32 with 10 classes: 295,312 (294,416 trainable);
# flatten=True: 391,312 (390,416 trainable), the hidden layer sees 4*4*128.


def CIFAR10CNN(
    *,
    flatten: bool = False,
    l2: float | None = None,
    kernel_initializer: str | keras.initializers.Initializer = "he_normal",
    filters: int = FILTERS,
    convs_per_stage: int = CONVS_PER_STAGE,
    downsampling: str = "max_pool",
    bn_synchronized: bool = False,
    include_top: bool = True,
    classes: int = 10,
    input_shape: tuple[int | None, ...] | None = None,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
):
    """The course's CIFAR-10 CNN.

    Args:
        flatten: bool. With `include_top`, flatten the last feature map
            instead of global average pooling before the dense layers.
        l2: float or None. L2 regularization factor on every convolution and
            dense kernel; None for none.
        kernel_initializer: str or `keras.initializers.Initializer`, for every
            convolution and dense kernel (`"he_normal"` or `"glorot_uniform"`,
            i.e. Xavier, in the course).
        filters: int. Filters of the first stage; the second and third have
            2x and 4x as many.
        convs_per_stage: int. Convolution-BN-ReLU units per stage.
        downsampling: `"max_pool"` (2x2 max pooling after each stage) or
            `"strided_conv"` (the stage's last convolution has stride 2; the
            same parameters).
        bn_synchronized: bool. Synchronized batch normalization over the
            replicas of a `tf.distribute` strategy (TensorFlow); see
            `keras_blocks.layers.ConvBNAct`.
        include_top: bool. Whether to end with the dense classifier.
        classes: int. Number of classes, with `include_top`.
        input_shape: tuple or None. Image shape; None gives 32x32 RGB.
        pooling: None, `"avg"` or `"max"`. Without `include_top`, how the last
            feature map is pooled (None keeps it).
        classifier_activation: str, callable or None. Activation of the last
            layer.
        name: str or None. Model name; default `"cifar10_cnn"`.
    """
    if not isinstance(flatten, bool):
        raise ValueError(
            "Invalid value for argument `flatten`. Expected a boolean. "
            f"Received: flatten={flatten!r}"
        )
    if l2 is not None and (
        isinstance(l2, bool) or not isinstance(l2, int | float) or not l2 > 0
    ):
        raise ValueError(
            "Invalid value for argument `l2`. Expected None or a strictly "
            f"positive float. Received: l2={l2!r}"
        )
    if not _is_initializer(kernel_initializer):
        raise ValueError(
            "Invalid value for argument `kernel_initializer`. Expected the name "
            "of a Keras initializer (e.g. 'he_normal', 'glorot_uniform') or an "
            f"initializer. Received: kernel_initializer={kernel_initializer!r}"
        )
    check.positive_int("filters", filters)
    check.positive_int("convs_per_stage", convs_per_stage)
    check.one_of("downsampling", downsampling, DOWNSAMPLINGS)
    check.boolean("bn_synchronized", bn_synchronized)
    check.choice("pooling", pooling, POOLINGS)
    if include_top:
        check.positive_int("classes", classes)
    inputs = image_input(input_shape, DEFAULT_SIZE, MIN_SIZE, "CIFAR10CNN")
    if include_top and flatten and None in inputs.shape[1:]:
        raise ValueError(
            "Invalid value for argument `input_shape`. With flatten=True the "
            "dense layers need a fixed image size. Received: "
            f"input_shape={tuple(inputs.shape[1:])}"
        )
    regularizer = None if l2 is None else keras.regularizers.L2(l2)
    kernel = {
        "kernel_initializer": kernel_initializer,
        "kernel_regularizer": regularizer,
    }

    strided = downsampling == "strided_conv"
    x = inputs
    for stage in range(1, STAGES + 1):
        width = filters * 2 ** (stage - 1)
        for index in range(1, convs_per_stage + 1):
            last = index == convs_per_stage
            x = layers.ConvBNAct(
                width,
                3,
                strides=2 if strided and last else 1,
                bn_synchronized=bn_synchronized,
                name=f"block{stage}_conv{index}",
                **kernel,
            )(x)
        if not strided:
            x = keras.layers.MaxPooling2D(2, name=f"block{stage}_pool")(x)
    # (h/8, w/8, 4 * filters): (4, 4, 128) at 32x32 inputs

    if include_top:
        if flatten:
            x = keras.layers.Flatten(name="flatten")(x)  # (batch, h/8 * w/8 * 128)
        else:
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)  # (batch, 128)
        x = layers.Dropout(DROPOUT, name="dropout")(x)
        x = keras.layers.Dense(HIDDEN_UNITS, activation="relu", name="fc", **kernel)(x)
        x = layers.Dropout(HIDDEN_DROPOUT, name="fc_dropout")(x)
        x = keras.layers.Dense(
            classes, activation=classifier_activation, name="predictions", **kernel
        )(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return keras.Model(inputs, x, name=name or "cifar10_cnn")


def _is_initializer(value):
    try:
        return keras.initializers.get(value) is not None
    except ValueError:
        return False


MODELS = {"cifar10_cnn": functools.partial(CIFAR10CNN)}


# The levels of `keras_blocks.models.backbone`: the last trunk layer at
# each stride.
PYRAMID = PyramidSpec(
    {"block1_conv1": layers.ConvBNAct},
    r"block\d+_(?:conv\d+|pool)",
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
