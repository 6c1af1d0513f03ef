"""Every reference model of examples/ starts with sublayers of their own and
is saved whole by `CheckpointManager`; the demo resumes where it stopped.

Starting weights are checked for every named model on TensorFlow, and for
one model of each family (with every kind of block) on JAX and PyTorch.
Checkpoints are checked for one model of each family on every backend: deeper
members repeat the same blocks, and all 44 models take about 9 minutes on two
cores. `KERAS_BLOCKS_ALL_MODELS=1` checks every model on every backend.
"""

import os

import keras
import numpy as np
import pytest
from state_checks import assert_checkpoint_holds_every_variable, correlated_pairs

pytest.importorskip("sklearn")  # the examples extra

from examples import train  # after the skip: it needs scikit-learn

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
ALL = os.environ.get("KERAS_BLOCKS_ALL_MODELS") == "1"
INIT_NAMES = (
    tuple(train.MODELS)
    if ALL or keras.config.backend() == "tensorflow"
    else FAMILY_MEMBERS
)
CHECKPOINT_NAMES = tuple(train.MODELS) if ALL else FAMILY_MEMBERS


def build(name):
    # The smallest input each model takes: the weights do not depend on it,
    # except for the dense layers after a flatten (AlexNet, VGG).
    keras.utils.set_random_seed(0)
    return train.build(name, train.MODELS[name][1], classes=10)


def test_family_members_are_named_models():
    assert set(FAMILY_MEMBERS) <= set(train.MODELS)


@pytest.mark.slow
@pytest.mark.parametrize("name", INIT_NAMES)
def test_no_two_weights_start_equal_or_proportional(name):
    assert correlated_pairs(build(name).weights) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", CHECKPOINT_NAMES)
def test_checkpoint_holds_every_variable(name, tmp_path):
    assert_checkpoint_holds_every_variable(lambda: build(name), tmp_path)


def test_demo_resumed_after_the_end_evaluates_as_it_ended(tmp_path, capsys):
    # The demo model; `--resume` on a finished run restores its last
    # checkpoint and evaluates it: before every weight was saved on
    # TensorFlow, that gave 0.1 (chance).
    args = ["--image-size", "8", "--epochs", "2", "--logdir", str(tmp_path)]
    trained = train.main(args)
    resumed = train.main([*args, "--resume"])
    assert "CheckpointManager: restored" in capsys.readouterr().out
    assert trained > 0.3
    np.testing.assert_allclose(resumed, trained, atol=1e-6)
