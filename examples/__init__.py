"""The programs around `keras_blocks`: training, transfer learning, weight
conversion, export, the course experiments and backbones. They use only the
public names of the library; the reference models they train are those of
`keras_blocks.models`. A package, so that the tests, benchmarks and tools
import the programs one way; run them as modules from the repository root:

    python -m examples.train
    python -m examples.models --model resnet50 --smoke

The family modules that lived here (`from examples import resnet`,
`import examples.resnet`) moved to `keras_blocks.models`; the old names
forward there with a FutureWarning.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

_MOVED = (
    "alexnet",
    "cifar10_cnn",
    "cifar_resnet",
    "efficientnet",
    "googlenet",
    "resnet",
    "vgg",
)


def _moved(name):
    warnings.warn(
        f"examples.{name} moved to keras_blocks.models.{name}: import it from "
        f"there (`from keras_blocks.models import {name}`), or build its models "
        "by name with keras_blocks.models.get_model. This alias will be removed.",
        FutureWarning,
        stacklevel=3,
    )
    return importlib.import_module(f"keras_blocks.models.{name}")


def __getattr__(name):
    # `from examples import resnet`: Python asks the package for the name
    # before it looks for a submodule.
    if name in _MOVED:
        module = _moved(name)
        globals()[name] = module  # warned once
        return module
    raise AttributeError(f"module 'examples' has no attribute {name!r}")


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import examples.resnet` and `from examples.resnet import ResNet`: the
    module of keras_blocks.models, under its old name too."""

    def find_spec(self, fullname, path, target=None):
        package, _, name = fullname.rpartition(".")
        if package == __name__ and name in _MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return _moved(spec.name.rpartition(".")[2])

    def exec_module(self, module):
        pass  # the module is keras_blocks.models' own, already run


if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedFinder())
