"""keras_blocks: reusable, composable CNN layers and training callbacks for Keras 3."""

from keras_blocks import (
    augmentation,
    callbacks,
    deploy,
    distribute,
    efficientnet,
    evaluation,
    layers,
    models,
    porting,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "augmentation",
    "callbacks",
    "deploy",
    "distribute",
    "efficientnet",
    "evaluation",
    "layers",
    "models",
    "porting",
]
