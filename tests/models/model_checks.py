"""Checks shared by the tests of whole models (the builders and examples/)."""

import keras
import numpy as np
import pytest

from tests.layers.layer_checks import to_numpy

# A parameter count (or a model's name) is the builder's arithmetic: it does not
# depend on the backend. Full-size models build fastest under PyTorch
# (TensorFlow took ~1.6x as long for the same models; JAX compiles an
# initializer per new weight shape), so the larger variants are counted there
# only.
counted_under_torch = pytest.mark.skipif(
    keras.config.backend() != "torch",
    reason="counts do not depend on the backend: counted under PyTorch",
)

# One reference model of each family, with every kind of block among them
# (tests over "every model" check these unless KERAS_BLOCKS_ALL_MODELS=1).
FAMILY_MEMBERS = (
    "cifar_resnet20",
    "cifar10_cnn",
    "resnet18",
    "resnet50v2",
    "se_resnet50",
    "resnext50_32x4d",
    "alexnet",
    "vgg11_bn",
    "googlenet_aux",
    "efficientnet_b0",
)


def randomize(model, seed=0):
    """Random BN statistics, scales and biases on top of the initial kernels,
    so the comparison sees every weight (fresh BN layers are the identity)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if weight.path.startswith("normalization"):
            continue  # keras' Normalization ignores assignments (see ours)
        if weight.path.endswith(("moving_variance", "gamma")):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
        elif weight.path.endswith(("beta", "moving_mean", "bias")):
            weight.assign(rng.normal(0, 0.1, weight.shape).astype("float32"))


def assert_same_predictions(ours, theirs, x):
    """Equal outputs within 1e-4 of their largest magnitude; returns ours."""
    ours_out, theirs_out = to_numpy(ours(x)), to_numpy(theirs(x))
    # Logits of a deep random network reach tens; compare relative to them.
    scale = max(1.0, float(np.abs(theirs_out).max()))
    assert np.abs(ours_out - theirs_out).max() <= 1e-4 * scale
    return ours_out


def assert_same_weight_shapes(ours, theirs):
    assert [tuple(w.shape) for w in ours.weights] == [
        tuple(w.shape) for w in theirs.weights
    ]
