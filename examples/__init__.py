"""The programs around `keras_blocks`: training, transfer learning, weight
conversion, export, the course experiments and backbones. They use only the
public names of the library; the reference models they train are those of
`keras_blocks.models`. A package, so that the tests, benchmarks and tools
import the programs one way; run them as modules from the repository root:

    python -m examples.train
    python -m examples.models --model resnet50 --smoke

The family modules that lived here (`from examples import resnet`) moved to
`keras_blocks.models`; the old names forward there with a DeprecationWarning.
"""

import importlib
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


def __getattr__(name):
    # `from examples import resnet`: Python asks the package for the name
    # before it looks for a submodule.
    if name in _MOVED:
        warnings.warn(
            f"examples.{name} moved to keras_blocks.models.{name}: import it "
            f"from there (`from keras_blocks.models import {name}`), or build "
            "its models by name with keras_blocks.models.get_model.",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(f"keras_blocks.models.{name}")
        globals()[name] = module  # warned once
        return module
    raise AttributeError(f"module 'examples' has no attribute {name!r}")
