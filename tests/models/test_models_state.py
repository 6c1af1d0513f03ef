"""Every reference model of examples/ starts with sublayers of their own and
is saved whole by `CheckpointManager` (that the demo, evaluated after its end,
evaluates as it ended: test_examples.py's test_train_demo_learns_digits).

One model of each family (with every kind of block) is checked on every
backend, starting weights and checkpoint; on PyTorch, the starting weights of
every other named model too (they build there in ~110 s against ~180 s under
TensorFlow, on two busy cores): each repeats its family member's blocks. Deeper members repeat the same blocks, and
checkpoints of all 47 models take about 9 minutes on two cores:
`KERAS_BLOCKS_ALL_MODELS=1` checks every model on every backend.
"""

import os

import keras
import pytest

from tests.layers.state_checks import (
    assert_checkpoint_holds_every_variable,
    correlated_pairs,
)
from tests.models.model_checks import FAMILY_MEMBERS, same_blocks_as

pytest.importorskip("sklearn")  # the examples extra

from examples import train  # after the skip: it needs scikit-learn

ALL = os.environ.get("KERAS_BLOCKS_ALL_MODELS") == "1"
# Models whose starting weights and checkpoint are both checked (one build
# serves both: on JAX a build compiles an initializer per weight shape).
CHECKPOINT_NAMES = tuple(train.MODELS) if ALL else FAMILY_MEMBERS
# Models whose starting weights alone are checked, under one backend: each
# repeats the blocks of its family's member.
INIT_ONLY_NAMES = [
    pytest.param(
        name,
        marks=same_blocks_as(
            " and ".join(m for m in CHECKPOINT_NAMES if train.FAMILY[m] is family)
        ),
    )
    for name, family in train.FAMILY.items()
    if name not in CHECKPOINT_NAMES
]


def build(name):
    # The smallest input each model takes: the weights do not depend on it,
    # except for the dense layers after a flatten (AlexNet, VGG).
    keras.utils.set_random_seed(0)
    return train.build(name, train.MODELS[name][1], classes=10)


@pytest.mark.backend_independent(reason="names in Python tables")
def test_family_members_are_named_models():
    assert set(FAMILY_MEMBERS) <= set(train.MODELS)


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
    assert_checkpoint_holds_every_variable(lambda: build(name), tmp_path, saved=first)
