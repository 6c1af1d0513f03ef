"""Pretrained weights from torchvision and timm for the reference models.

Each family file (resnet.py, vgg.py, ...) describes where its published
weights come from in a `WEIGHTS` dict: source name ("torchvision", "timm") ->
`WeightSource`. `load_pretrained` loads a downloaded file with the library's
strict `keras_blocks.porting.load_state_dict`:

    model = resnet.ResNet(50)
    load_pretrained(model, "resnet50-11ad3fa6.pth", resnet.WEIGHTS["torchvision"])
"""

import dataclasses
import os
from collections.abc import Callable

import keras

from keras_blocks._builders import image_shape
from keras_blocks.efficientnet import IMAGENET_MEAN, IMAGENET_STDDEV
from keras_blocks.porting import Flattened, load_state_dict


@dataclasses.dataclass(frozen=True)
class WeightSource:
    """How one source lays out a family's weights.

    Attributes:
        mapping: model -> {Keras layer path: source key prefix}; raises
            ValueError for a model built in another layout.
        bn_epsilon: the source's batch normalization epsilon (None: no BN, or
            it depends on the model: `epsilon(model)` decides).
        head: source key prefixes of the ImageNet classifier, ignored when the
            model has no top (`include_top=False`).
        layout: how to build the model in this source's layout (for errors).
        files: MODELS name -> (published file name, top-1, build options).
        ignored: source key prefixes never loaded (auxiliary heads).
        license: the weights' license, for the docs.
        mean, std: per RGB channel, the normalization the weights expect
            after scaling pixels to [0, 1] (ImageNet's, as torchvision's
            transforms and timm's `resnet*`/`efficientnet*` configurations).
    """

    mapping: Callable[[keras.Model], dict]
    bn_epsilon: float | Callable[[keras.Model], float] | None
    head: tuple[str, ...]
    layout: str
    files: dict[str, tuple[str, float, dict]]
    ignored: tuple[str, ...] = ()
    license: str = "BSD-3-Clause (torchvision)"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STDDEV


def load_pretrained(model, path, source):
    """Loads the `source`'s state dict file at `path` into `model`; returns
    the `keras_blocks.porting.LoadReport`."""
    has_top = any(layer.name == "predictions" for layer in model.layers)
    epsilon = source.bn_epsilon
    if callable(epsilon):
        epsilon = epsilon(model)
    try:
        mapping = source.mapping(model)
    except ValueError as error:
        raise ValueError(f"{error} {source.layout}") from None
    return load_state_dict(
        model,
        os.fspath(path) if not isinstance(path, dict) else path,
        mapping,
        ignore=source.ignored + (() if has_top else source.head),
        bn_epsilon=epsilon,
        layout_hint=source.layout,
    )


def flattened(model, prefix, feature_shape, network, size):
    """`Flattened` for a first classifier layer that reads the flattened
    `(channels, height, width)` map of `network` at `size` x `size` inputs; a
    ValueError naming `input_shape` where the model's map has another size."""
    flatten = model.get_layer("flatten")
    data_format = flatten.data_format  # the builder's, as its convolutions'
    channels, height, width = feature_shape
    expected = (height, width, channels)
    if data_format == "channels_first":
        expected = tuple(feature_shape)
    received = tuple(flatten.input.shape[1:])
    if received != expected:
        raise ValueError(
            f"{network} flattens a {expected} feature map ({size}x{size} "
            "inputs, where its adaptive average pooling changes nothing); "
            f"this model flattens {received}: it needs input_shape="
            f"{image_shape(size, data_format)} (the default), or "
            "include_top=False for other sizes. Received: input_shape="
            f"{tuple(model.input_shape[1:])}."
        )
    # keras.layers.Flatten orders the features (h, w, c) in either data format.
    return Flattened(prefix, tuple(feature_shape))
