"""Checks shared by the tests of whole models (the builders of
`keras_blocks.models` and the commands of examples/)."""

import contextlib
import math

import keras
import numpy as np
import pytest

from examples.models import image_shape, trainable_count  # noqa: F401 (re-exported)
from keras_blocks import models
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
# (tests over "every model" check these unless KERAS_BLOCKS_ALL_MODELS=1);
# test_models_state.py's test_family_members_cover_every_family checks that
# they name every family of `keras_blocks.models.FAMILIES`.
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
    "efficientnet_v2_b0",
)
# The smallest model of each family (VGG's with batch normalization, which the
# others but AlexNet have): the distributed runs' models
# (tests/children/distribute_child_*.py); test_models_state.py's
# test_family_members_cover_every_family checks that they name every family.
SMALLEST_FAMILY_MEMBERS = (
    "cifar_resnet20",
    "cifar10_cnn",
    "resnet18",
    "alexnet",
    "vgg11_bn",
    "googlenet",
    "efficientnet_b0",
    "efficientnet_v2_b0",
)


def families_of(names):
    """The family modules (`keras_blocks.models.FAMILIES`) of named models."""
    return {models.model_entry(name).family for name in names}


# Keras' random initializers (every kernel of the reference models: he_normal,
# glorot_uniform and EfficientNet's are VarianceScaling) took most of a build's
# time: under JAX one compile of the draw per new weight shape (a phi=0.5
# EfficientNet: ~12 s of CPU against ~2 s; ~2 s for one 4096x4096 kernel), under
# PyTorch ~1 s for that kernel (truncated normal). A test whose claim is not
# Keras' draws builds with NumPy's.


@contextlib.contextmanager
def kernels(kind, seed=None):
    """Keras' variance-scaling initializers replaced, within it, for tests
    whose claim is not the initial values.

    `"drawn"`: NumPy draws from the initializer's distribution (scale, mode,
    truncation at two standard deviations, as Keras draws), seeded by `seed`
    or else by the test's `keras.utils.set_random_seed`: for a model whose
    values must be random but need not be Keras' draws (weights copied into
    another model, a forward pass). `"zeros"`: for a model whose kernels a
    test never reads (parameter counts, layer settings, shapes) or
    overwrites before reading (the model that weights are copied, restored or
    loaded into: a weight left out would stay zero, unlike the source's).
    Under JAX NumPy's zeros: keras.ops' compile once per new shape too.
    """
    if seed is None:
        seed = np.random.randint(2**31)
    rng = np.random.default_rng(seed)

    def draw(self, shape, dtype=None):
        shape = tuple(shape)
        if kind == "zeros" and keras.config.backend() != "jax":
            return keras.ops.zeros(shape, dtype)  # no copy, as NumPy's
        if kind == "zeros":
            return keras.ops.convert_to_tensor(np.zeros(shape, "float32"), dtype)
        receptive = math.prod(shape[:-2])  # as keras.initializers' fans
        fan_in = shape[-2] * receptive if len(shape) > 1 else shape[0]
        fan_out = shape[-1] * receptive
        fan = {"fan_in": fan_in, "fan_out": fan_out}.get(
            self.mode, (fan_in + fan_out) / 2
        )
        scale = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3 * scale)
            values = (2 * rng.random(shape, "float32") - 1) * limit
        elif self.distribution == "untruncated_normal":
            values = rng.standard_normal(shape, "float32") * math.sqrt(scale)
        else:  # truncated at two standard deviations, as Keras draws
            values = rng.standard_normal(math.prod(shape), "float32")
            outside = np.flatnonzero(np.abs(values) > 2)
            while outside.size:
                values[outside] = rng.standard_normal(outside.size, "float32")
                outside = outside[np.abs(values[outside]) > 2]
            values = values.reshape(shape) * (math.sqrt(scale) / 0.87962566103423978)
        return keras.ops.convert_to_tensor(values, dtype)

    if kind not in ("drawn", "zeros"):
        raise ValueError(f"kind: 'drawn' or 'zeros', not {kind!r}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.initializers.VarianceScaling, "__call__", draw)
        yield


def zero_kernels():
    """`kernels("zeros")`."""
    return kernels("zeros")


def random_kernels(seed=None):
    """`kernels("drawn", seed)`."""
    return kernels("drawn", seed)


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
