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
  `post_relu`); keras.applications' v2 (`layout="keras_applications"`) halves the
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

Models built with `include_top=True` or `False` give the same backbone. Each
family module gives its `PyramidSpec` to the registry.

    python -m examples.backbones --model resnet50   # the levels and shapes
"""

import dataclasses
import re

import keras

from keras_blocks.models import _registry

LEVELS = ("P2", "P3", "P4", "P5")  # strides 4, 8, 16, 32


@dataclasses.dataclass(frozen=True)
class PyramidSpec:
    """How to find a family's levels in its built model.

    Attributes:
        markers: layer name -> the class(es) that layer has in the family's
            models, or a predicate of the layer (EfficientNetV2's fused
            `block1a`); a model is of the family whose markers it has (the
            one with the most, where several match).
        trunk: a regular expression of the names of the layers on the main
            path (not the auxiliary heads), which `pyramid_layers` walks in
            the model's order.
        first_level: the smallest level given (2; 0 for the CIFAR models).

    Examples:
        >>> from keras_blocks.models import resnet
        >>> resnet.PYRAMID.first_level
        2
    """

    markers: dict
    trunk: str
    first_level: int = 2


def family(model):
    """The family of a reference model, by its layers: `"resnet"`,
    `"cifar_resnet"`, `"googlenet"`, `"efficientnet"`, `"alexnet"`, `"vgg"`,
    `"cifar10_cnn"`, ... (the names of the family modules of
    `keras_blocks.models`).

    Raises:
        ValueError: if `model` is not built by one of those files' builders.

    Examples:
        >>> from keras_blocks.models import family, get_model
        >>> family(get_model("vgg11_bn", input_shape=(32, 32, 3), include_top=False))
        'vgg'
    """
    specs = _specs()
    if isinstance(model, keras.Model):
        by_name = {layer.name: layer for layer in model.layers}
        matching = [
            (len(spec.markers), name)
            for name, spec in specs.items()
            if all(
                _marks(by_name.get(layer), kind) for layer, kind in spec.markers.items()
            )
        ]
        if matching:
            return max(matching)[1]
    raise ValueError(
        "Invalid value for argument `model`. Expected a reference model of "
        "keras_blocks.models (one of `list_models()`, or a model built by "
        f"{', '.join(specs)}'s builder), recognized by its layer names. "
        f"Received: model={_describe(model)}"
    )


def _marks(layer, kind):
    if isinstance(kind, type | tuple):
        return isinstance(layer, kind)
    return layer is not None and bool(kind(layer))


def _specs():
    return {
        name: family.pyramid
        for name, family in _registry.families().items()
        if family.pyramid is not None
    }


def pyramid_layers(model: keras.Model) -> dict[str, str]:
    """The name of the layer that gives each level of `model`.

    Returns:
        A dict `{"P2": layer name, ..., "P5": layer name}`, from the smallest
        level to the largest (P0 ... for the CIFAR models).

    Raises:
        ValueError: if `model` is not a reference model.

    Examples:
    >>> from keras_blocks.models import get_model
    >>> model = get_model("resnet18", input_shape=(32, 32, 3))
    >>> layers = pyramid_layers(model)
    >>> list(layers)
    ['P2', 'P3', 'P4', 'P5']
    >>> layers["P5"]
    'conv5_block2'
    """
    spec = _specs()[family(model)]
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


def pyramid_outputs(model: keras.Model) -> dict[str, keras.KerasTensor]:
    """The symbolic output of each level of `model`, as keras-hub's
    `Backbone.pyramid_outputs`.

    Returns:
        A dict `{"P2": KerasTensor, ..., "P5": KerasTensor}` (P0 ... for the
        CIFAR models), each of shape `(batch, h, w, channels)` or
        `(batch, channels, h, w)` as the model was built.

    Raises:
        ValueError: if `model` is not a reference model.

    Examples:
        >>> from keras_blocks.models import get_model, pyramid_outputs
        >>> model = get_model("cifar_resnet20")
        >>> {level: tuple(x.shape[1:]) for level, x in pyramid_outputs(model).items()}
        {'P0': (32, 32, 16), 'P1': (16, 16, 32), 'P2': (8, 8, 64)}
    """
    return {
        level: model.get_layer(name).output
        for level, name in pyramid_layers(model).items()
    }


def backbone(model: keras.Model, name: str | None = None) -> keras.Model:
    """`model` from its input(s) to its levels, a dict of feature maps.

    The backbone shares the model's layers: weights loaded into one are the
    other's; the classifier (if any) is simply not part of it.

    Args:
        model: keras.Model. A reference model (see `family`),
            built with `include_top=True` or `False`.
        name: str or None. The backbone's name; default the model's with
            `"_backbone"` appended.

    Returns:
        A `keras.Model` whose output is `pyramid_outputs(model)`: called on
        images it returns `{"P2": ..., "P5": ...}`.

    Raises:
        ValueError: if `model` is not a reference model.

    Examples:
    >>> from keras_blocks.models import get_model
    >>> features = backbone(get_model("resnet18", input_shape=(64, 64, 3)))
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
