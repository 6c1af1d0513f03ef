"""Every reference model as a backbone: its stage outputs at strides 4 to 32.

A detection or segmentation head (a feature pyramid, a U-Net decoder) needs
the feature maps of several resolutions, not the classifier. `backbone(model)`
is the model from its input to those maps, a dict keyed by level as
keras-hub's `pyramid_outputs` names them: `"P{k}"` is the output at stride
`2 ** k`, so P2, P3, P4 and P5 are at strides 4, 8, 16 and 32 (timm's
`features_only` with `out_indices=(1, 2, 3, 4)`). The backbone shares the
model's layers and weights: load pretrained weights into the model, then take
its backbone.

Each level is the *last* layer at its stride, found from the built model's
layer names and strides:

- ResNet, SE-ResNet, ResNeXt: the last block of conv2_x ... conv5_x. ResNet v2
  ends with `post_bn` and `post_relu`, which belong to P5 (P5 is
  `post_relu`); keras.applications' v2 (`keras_applications=True`) halves the
  resolution in the *last* block of conv2_x to conv4_x, so there P2 ... P4 are
  each stage's last block but one.
- VGG and AlexNet: the activation before each pooling, and the last pooling's
  output for P5 (timm's `features_only` for VGG: pre-pooling features, then
  the final max pooling at stride 32).
- GoogLeNet: the stem's last layer before `pool2`, then inception_3b, 4e
  and 5b (the auxiliary classifiers are not part of it).
- EfficientNet: the last block of each resolution (block2, block3, block5 and
  block7's last for B0 ... B7); the 1x1 `top` convolution belongs to the head,
  as timm's `conv_head`.
- The CIFAR ResNets (strides 1, 2, 4) and the CIFAR-10 CNN (1, 2, 4, 8) have
  a smaller total stride: they give every stage from stride 1, P0 ... P2 and
  P0 ... P3.

Models built with `include_top=True` or `False` give the same backbone.

    python -m examples.backbones --model resnet50   # the levels and shapes
"""

import argparse
import dataclasses
import re
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python examples/backbones.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples._cli import HelpFormatter, model_name


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--model", type=model_name, default="resnet50")
    parser.add_argument(
        "--image-size", type=int, default=224, help="height and width of the input"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

import keras

from examples._common import image_shape
from keras_blocks import layers

LEVELS = ("P2", "P3", "P4", "P5")  # strides 4, 8, 16, 32


@dataclasses.dataclass(frozen=True)
class _Family:
    """How to find a family's levels in its built model.

    markers: layer name -> the class(es) that layer has in the family.
    trunk: the names of the layers on the main path (not the auxiliary
        heads), which `_levels` walks in the model's order.
    first_level: the smallest level given (2; 0 for the CIFAR models).
    """

    markers: dict
    trunk: str
    first_level: int = 2


_BLOCKS = (layers.ResidualBlock, layers.BottleneckBlock)
_POOL = keras.layers.MaxPooling2D
# Tried in order: VGG before the CIFAR-10 CNN, whose three stages have VGG's
# layer names.
_FAMILIES = {
    "resnet": _Family(
        {"conv1": layers.ConvBNAct, "pool1_pool": _POOL, "conv2_block1": _BLOCKS},
        r"conv1|pool1_pool|conv\d+_block\d+|post_relu",
    ),
    "cifar_resnet": _Family(
        {"conv1": layers.ConvBNAct, "stage1_block1": layers.ResidualBlock},
        r"conv1|stage\d+_block\d+",
        first_level=0,
    ),
    "googlenet": _Family(
        {"conv1": layers.ConvBNAct, "inception_5b": layers.InceptionModule},
        r"conv1|conv2_reduce|conv2|norm\d|pool\d|inception_\w+",
    ),
    "efficientnet": _Family(
        {"stem": layers.ConvBNAct, "block1a": layers.MBConvBlock},
        r"stem|block\d+(?:[a-z]|_\d+)",
    ),
    "alexnet": _Family(
        {"conv1": layers.ConvBNAct, "conv5": layers.ConvBNAct, "pool5": _POOL},
        r"conv\d|norm\d|pool\d",
    ),
    "vgg": _Family(
        {"block5_conv1": layers.ConvBNAct, "block5_pool": _POOL},
        r"block\d+_(?:conv\d+|lrn|pool)",
    ),
    "cifar10_cnn": _Family(
        {"block1_conv1": layers.ConvBNAct},
        r"block\d+_(?:conv\d+|pool)",
        first_level=0,
    ),
}


def family(model):
    """The family of a reference model, by its layers: `"resnet"`,
    `"cifar_resnet"`, `"googlenet"`, `"efficientnet"`, `"alexnet"`, `"vgg"` or
    `"cifar10_cnn"` (the names of the family files in examples/).

    Raises:
        ValueError: if `model` is not built by one of those files' builders.
    """
    if isinstance(model, keras.Model):
        by_name = {layer.name: layer for layer in model.layers}
        for name, spec in _FAMILIES.items():
            if all(
                isinstance(by_name.get(layer), kind)
                for layer, kind in spec.markers.items()
            ):
                return name
    raise ValueError(
        "Invalid value for argument `model`. Expected a reference model of "
        "examples/ (one of examples.train.MODELS, or a model built by "
        f"{', '.join(_FAMILIES)}'s builder), recognized by its layer names. "
        f"Received: model={_describe(model)}"
    )


def pyramid_layers(model):
    """The name of the layer that gives each level of `model`.

    Returns:
        A dict `{"P2": layer name, ..., "P5": layer name}`, from the smallest
        level to the largest (P0 ... for the CIFAR models).

    Raises:
        ValueError: if `model` is not a reference model.

    Examples:
    >>> from examples import resnet
    >>> model = resnet.ResNet(18, input_shape=(32, 32, 3))
    >>> layers = pyramid_layers(model)
    >>> list(layers)
    ['P2', 'P3', 'P4', 'P5']
    >>> layers["P5"]
    'conv5_block2'
    """
    spec = _FAMILIES[family(model)]
    trunk = re.compile(spec.trunk)
    last = {}  # level -> the last trunk layer at that stride
    stride = 1
    for layer in model.layers:  # a functional model's layers, in order
        if not trunk.fullmatch(layer.name):
            continue
        stride *= _stride(layer)
        level = stride.bit_length() - 1
        if stride == 2**level and level >= spec.first_level:
            last[level] = layer.name
    return {f"P{level}": last[level] for level in sorted(last)}


def pyramid_outputs(model):
    """The symbolic output of each level of `model`, as keras-hub's
    `Backbone.pyramid_outputs`.

    Returns:
        A dict `{"P2": KerasTensor, ..., "P5": KerasTensor}` (P0 ... for the
        CIFAR models), each of shape `(batch, h, w, channels)` or
        `(batch, channels, h, w)` as the model was built.

    Raises:
        ValueError: if `model` is not a reference model.
    """
    return {
        level: model.get_layer(name).output
        for level, name in pyramid_layers(model).items()
    }


def backbone(model, name=None):
    """`model` from its input(s) to its levels, a dict of feature maps.

    The backbone shares the model's layers: weights loaded into one are the
    other's; the classifier (if any) is simply not part of it.

    Args:
        model: keras.Model. A reference model of examples/ (see `family`),
            built with `include_top=True` or `False`.
        name: str or None. The backbone's name; default the model's with
            `"_backbone"` appended.

    Returns:
        A `keras.Model` whose output is `pyramid_outputs(model)`: called on
        images it returns `{"P2": ..., "P5": ...}`.

    Raises:
        ValueError: if `model` is not a reference model.

    Examples:
    >>> from examples import resnet
    >>> features = backbone(resnet.ResNet(18, input_shape=(64, 64, 3)))
    >>> {level: tuple(x.shape[1:]) for level, x in features.output.items()}
    {'P2': (16, 16, 64), 'P3': (8, 8, 128), 'P4': (4, 4, 256), 'P5': (2, 2, 512)}
    """
    outputs = pyramid_outputs(model)
    inputs = model.inputs if len(model.inputs) > 1 else model.inputs[0]
    return keras.Model(inputs, outputs, name=name or f"{model.name}_backbone")


def _stride(layer):
    """The layer's stride in height (the reference models stride squarely)."""
    strides = getattr(layer, "strides", 1)
    return strides[0] if isinstance(strides, tuple | list) else strides


def _describe(model):
    if not isinstance(model, keras.Model):
        return repr(model)
    names = [layer.name for layer in model.layers[1:4]]
    return f"<{type(model).__name__} {model.name!r}, layers {', '.join(names)}, ...>"


def main(argv=None):
    from examples import train  # the model table; train imports the families

    args = parse_args(argv)
    builder, _ = train.MODELS[args.model]
    model = builder(input_shape=image_shape(args.image_size))
    features = backbone(model)
    for level, layer in pyramid_layers(model).items():
        shape = tuple(features.output[level].shape[1:])
        print(f"{level}  {layer:<16} {shape}")
    return features


if __name__ == "__main__":
    main()
