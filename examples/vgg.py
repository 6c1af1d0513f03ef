"""VGG-11/13/16/19 (configurations A, B, D, E) and their BN variants, from one table.

Five stages of 3x3 convolutions with ReLU, each ending in 2x2 max pooling,
with 64, 128, 256, 512 and 512 filters; then two 4096-unit fully connected
layers with dropout 0.5 and the classifier. Depth only changes how many
convolutions each stage has.

Reference:
    Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale
    Image Recognition", ICLR 2015 (table 1, configurations A, B, D, E).

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

    python -m examples.vgg --model vgg16 --smoke

Load ImageNet weights from keras.applications:

    source = keras.applications.VGG16(weights="imagenet")   # downloads
    model = VGG(16)
    model.set_weights(source.get_weights())
    # inputs: keras.applications.vgg16.preprocess_input (BGR, mean-centered)
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

DEFAULT_SIZE = 224
MIN_SIZE = 32  # five 2x2 poolings: 32 -> 1
STAGE_FILTERS = (64, 128, 256, 512, 512)
# depth: convolutions per stage  # (configuration) parameters with 1000 classes;
# trainable parameters with batch_norm=True (= torchvision's vgg*_bn)
DEPTHS = {
    11: (1, 1, 2, 2, 2),  # (A) 132,863,336; 132,868,840
    13: (2, 2, 2, 2, 2),  # (B) 133,047,848; 133,053,736
    16: (2, 2, 3, 3, 3),  # (D) 138,357,544; 138,365,992
    19: (2, 2, 4, 4, 4),  # (E) 143,667,240; 143,678,248
}
FC_UNITS = 4096
DROPOUT = 0.5


def VGG(
    depth=16,
    *,
    batch_norm=False,
    include_top=True,
    classes=1000,
    input_shape=None,
    pooling=None,
    classifier_activation="softmax",
    name=None,
):
    """A VGG of `depth` 11, 13, 16 or 19; `batch_norm=True` gives VGG-BN."""
    check.choice("depth", depth, DEPTHS)
    check.choice("pooling", pooling, POOLINGS)
    if include_top:
        check.positive_int("classes", classes)
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
            x = layers.ConvBNAct(
                filters,
                3,
                batch_norm=batch_norm,
                use_bias=True,  # keras.applications' and torchvision's
                name=f"block{stage}_conv{index}",
            )(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{stage}_pool")(x)
    # (7, 7, 512) at 224x224 inputs

    if not include_top:
        outputs = classifier(x, False, classes, pooling, classifier_activation)
        return keras.Model(inputs, outputs, name=name or _name(depth, batch_norm))
    # Flattens (batch, 7 * 7 * 512) at 224.
    names = (("fc1", "fc1_dropout"), ("fc2", "fc2_dropout"))
    outputs = dense_head(x, FC_UNITS, DROPOUT, names, classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name or _name(depth, batch_norm))


def _name(depth, batch_norm):
    return f"vgg{depth}{'_bn' if batch_norm else ''}"


MODELS = {
    **{f"vgg{d}": functools.partial(VGG, d) for d in DEPTHS},
    **{f"vgg{d}_bn": functools.partial(VGG, d, batch_norm=True) for d in DEPTHS},
}


def main(argv=None):
    return model_main(MODELS, __doc__.split("\n")[0], MIN_SIZE, argv)


if __name__ == "__main__":
    main()
