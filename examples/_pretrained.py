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

from keras_blocks.porting import load_state_dict


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
        ignored: source key prefixes never loaded (auxiliary heads).
        layout: how to build the model in this source's layout (for errors).
        files: MODELS name -> (published file name, top-1, build options).
        license: the weights' license, for the docs.
    """

    mapping: Callable[[keras.Model], dict]
    bn_epsilon: float | Callable[[keras.Model], float] | None
    head: tuple[str, ...]
    layout: str
    files: dict[str, tuple[str, float, dict]]
    ignored: tuple[str, ...] = ()
    license: str = "BSD-3-Clause (torchvision)"


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
