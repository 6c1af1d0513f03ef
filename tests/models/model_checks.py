"""Checks shared by the tests of whole models (the builders and examples/)."""

import numpy as np
import pytest

from tests.layers.layer_checks import to_numpy

# A parameter count, a model's name and its layers' settings are the builder's
# arithmetic: the same Python creates the same weights under every backend (the
# backend-specific paths, _torch_ops and TensorFlow's convolutions, are in the
# calls, not in building). Such a test runs once (tools/run_all.py's PyTorch
# pass, where full-size models build fastest: TensorFlow took ~1.6x as long;
# JAX compiles an initializer per new weight shape).
builders_arithmetic = pytest.mark.backend_independent(
    reason="parameter counts, names and layer settings are the builder's Python, "
    "the same weights on every backend"
)
# A builder's refusal of bad arguments: Python checks, with the same message
# under every backend.
argument_checks = pytest.mark.backend_independent(
    reason="the builder's argument checks are Python, the same message everywhere"
)
# The backend a deeper or wider variant of a family runs its numerics under.
VARIANTS_BACKEND = "torch"


def same_blocks_as(checked):
    """The marker of a variant that repeats the blocks of `checked` (a variant
    tested the same way on every backend) in a deeper or wider stage table:
    what it adds, the table, is the builder's Python, so it runs under one
    backend, PyTorch, where full-size models build fastest."""
    return pytest.mark.backends(
        VARIANTS_BACKEND,
        reason=f"the blocks of {checked} (checked on every backend) in a larger "
        "stage table, which is the builder's Python",
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
