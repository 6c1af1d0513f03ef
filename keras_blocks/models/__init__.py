"""The reference models: AlexNet, VGG, GoogLeNet, ResNet (SE-ResNet, ResNeXt),
the CIFAR ResNets, the CIFAR-10 CNN and EfficientNet, built by name with
their published weights and preprocessing.

Each family is one module (its stage table, builder, named configurations
and weight sources), which registers its models here when imported:

    >>> from keras_blocks import models
    >>> len(models.list_models()) > 40
    True
    >>> model = models.get_model("resnet18", input_shape=(64, 64, 3), classes=10)
    >>> model.name
    'resnet18'

`backbone(model)` and `pyramid_outputs(model)` give any of them as a
backbone of feature maps at strides 4 to 32.
"""

import importlib
import pkgutil

from keras_blocks.models._get_model import get_model
from keras_blocks.models._registry import (
    Family,
    ModelEntry,
    WeightFile,
    families,
    list_models,
    model_entry,
)
from keras_blocks.models._weights import (
    KerasApplicationsSource,
    WeightSource,
    load_pretrained,
    normalization,
)
from keras_blocks.models.backbones import (
    PyramidSpec,
    backbone,
    family,
    pyramid_layers,
    pyramid_outputs,
)

# Every family module registers itself on import: adding a family is adding
# its module.
FAMILIES = tuple(
    module.name
    for module in pkgutil.iter_modules(__path__)
    if not module.name.startswith("_") and module.name != "backbones"
)
for _family in FAMILIES:
    importlib.import_module(f"{__name__}.{_family}")

__all__ = [
    "FAMILIES",
    "Family",
    "KerasApplicationsSource",
    "ModelEntry",
    "PyramidSpec",
    "WeightFile",
    "WeightSource",
    "backbone",
    "families",
    "family",
    "get_model",
    "list_models",
    "load_pretrained",
    "model_entry",
    "normalization",
    "pyramid_layers",
    "pyramid_outputs",
    *FAMILIES,
]
