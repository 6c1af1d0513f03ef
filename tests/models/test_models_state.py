"""Every reference model of keras_blocks.models starts with sublayers of their
own and is saved whole by `CheckpointManager` (that the demo, evaluated after
its end, evaluates as it ended: test_examples.py's
test_train_demo_learns_digits).

One model of each family (with every kind of block) is checked on every
backend, starting weights and checkpoint; on PyTorch, the starting weights of
the other named models that build their blocks with other options. The
deeper and wider models that repeat a checked model's blocks with the same
options (REPEATS) are left to it: the same code creates the same sublayers,
only more of them (they took ~180 of the PyTorch pass's ~200 s here).
`KERAS_BLOCKS_ALL_MODELS=1` checks every model, starting weights and
checkpoint, on every backend (about 9 minutes on two cores).
"""

import os

import keras
import pytest

from keras_blocks.models import FAMILIES, get_model, list_models, model_entry, resnet
from tests.layers.state_checks import (
    assert_checkpoint_holds_every_variable,
    correlated_pairs,
)
from tests.models.model_checks import (
    FAMILY_MEMBERS,
    SMALLEST_FAMILY_MEMBERS,
    families_of,
    image_shape,
    same_blocks_as,
    zero_kernels,
)

ALL = os.environ.get("KERAS_BLOCKS_ALL_MODELS") == "1"
# Models whose starting weights and checkpoint are both checked (one build
# serves both: on JAX a build compiles an initializer per weight shape).
CHECKPOINT_NAMES = tuple(list_models()) if ALL else FAMILY_MEMBERS
# Named models that repeat the blocks of a smaller one, built by the same
# builder with the same options, in a deeper or wider stage table (depth,
# ResNeXt's width, EfficientNet's scaling): repeat -> the checked model.
# Their tables are pinned by the parameter counts (test_models_resnet.py's
# test_paper_configuration_counts and test_cifar_resnet_counts,
# test_models_vgg.py's test_parameter_counts, test_efficientnet.py's
# test_parameter_count_equals_keras_applications) and the backbone levels
# (test_backbones.py); their names by those counts, test_models_resnet.py's
# test_named_models_carry_their_names and, for EfficientNet, code_path below.
REPEATS = {
    **{f"cifar_resnet{d}": "cifar_resnet20" for d in (32, 44, 56, 110)},
    **{
        f"{p}resnet34{v}": f"{p}resnet18{v}"
        for p, v in (("", ""), ("", "v2"), ("se_", ""))
    },
    **{
        f"{p}resnet{d}{v}": f"{p}resnet50{v}"
        for d in (101, 152)
        for p, v in (("", ""), ("", "v2"), ("se_", ""))
    },
    "resnext101_32x8d": "resnext50_32x4d",
    **{f"vgg{d}{bn}": f"vgg11{bn}" for d in (13, 16, 19) for bn in ("", "_bn")},
    **{f"efficientnet_b{k}": "efficientnet_b0" for k in range(1, 8)},
    **{
        f"efficientnet_v2_{v}": "efficientnet_v2_b0"
        for v in ("b1", "b2", "b3", "s", "m", "l")
    },
}


def checked_members(name):
    """The checked models of `name`'s family."""
    family = model_entry(name).family
    return " and ".join(m for m in CHECKPOINT_NAMES if model_entry(m).family == family)


# Models whose starting weights alone are checked, under one backend: each
# builds its family member's blocks with other options (no BN, LRN, 1x1
# convolutions, torchvision's layout...).
INIT_ONLY_NAMES = [
    pytest.param(name, marks=same_blocks_as(checked_members(name)))
    for name in list_models()
    if name not in CHECKPOINT_NAMES and name not in REPEATS
]


def build(name):
    # The smallest input each model takes: the weights do not depend on it,
    # except for the dense layers after a flatten (AlexNet, VGG).
    keras.utils.set_random_seed(0)
    size = model_entry(name).min_size
    return get_model(name, input_shape=image_shape(size), classes=10)


def build_zero(name):
    """`build(name)` with zero kernels: a model a checkpoint is restored into
    (the check scrambles every variable before restoring)."""
    with zero_kernels():
        return build(name)


@pytest.mark.backend_independent(reason="names in Python tables")
def test_family_members_are_named_models():
    assert set(FAMILY_MEMBERS) | set(SMALLEST_FAMILY_MEMBERS) <= set(list_models())


@pytest.mark.backend_independent(reason="names in Python tables")
def test_family_members_cover_every_family():
    # A family module added to keras_blocks.models needs its members there.
    assert families_of(FAMILY_MEMBERS) == set(FAMILIES)
    assert families_of(SMALLEST_FAMILY_MEMBERS) == set(FAMILIES)
    assert len(SMALLEST_FAMILY_MEMBERS) == len(FAMILIES)  # one each


def code_path(name):
    """What a named model's builder does, less its depth and width: the
    function (EfficientNet's presets: one builder), a ResNet's kind of block,
    the options."""
    builder = model_entry(name).builder  # a builder or a functools.partial of one
    options = dict(getattr(builder, "keywords", {}))
    assert options.pop("name", name) == name  # EfficientNet's are passed
    options.pop("base_width", None)
    function = getattr(builder, "func", builder).__name__.rstrip("0123456789")
    depth = getattr(builder, "args", ())[:1]
    block = resnet.DEPTHS[depth[0]][0] if function == "ResNet" else None
    return function, block, options


@pytest.mark.backend_independent(reason="the named models' builders, in Python")
def test_repeats_run_the_code_of_a_checked_model():
    checked = {*CHECKPOINT_NAMES, *(p.values[0] for p in INIT_ONLY_NAMES)}
    for name, model in REPEATS.items():
        assert name not in FAMILY_MEMBERS and model in checked, name
        assert model_entry(name).family == model_entry(model).family, name
        assert code_path(name) == code_path(model), name


@pytest.mark.slow
@pytest.mark.parametrize("name", INIT_ONLY_NAMES)
def test_no_two_weights_start_equal_or_proportional(name):
    model = build(name)
    assert model.name == name  # the name it is run and logged under
    assert correlated_pairs(model.weights) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", CHECKPOINT_NAMES)
def test_starting_weights_and_checkpoint(name, tmp_path):
    first = build(name)
    assert first.name == name
    assert correlated_pairs(first.weights) == []
    assert_checkpoint_holds_every_variable(
        lambda: build_zero(name), tmp_path, saved=first
    )
