"""Every layer of the property registry and two reference models train, save
and load under `tf.distribute.MirroredStrategy` (2 logical CPUs).

For each case, `distribute_child_registry.py` (a part of the process that
conftest.py's `mirrored_parts` starts) builds and compiles in the strategy's
scope, with every batch normalization synchronized, fits one step on a
global batch of 4 (2 per replica), saves to `.keras` and loads it back
with `safe_mode=True` in the scope. The loaded model must give the outputs of
the one it saved and keep its BN synchronized. One process for all cases
(logical devices are set before TensorFlow starts); TensorFlow backend only.

One model of each other family (GoogLeNet and EfficientNet take half a minute
of CPU each; their blocks are in the registry) runs with
`KERAS_BLOCKS_ALL_MODELS=1`.
"""

import inspect
import json
import os

import pytest

from tests.layers.test_properties import REGISTRY
from tests.models.model_checks import SMALLEST_FAMILY_MEMBERS

# A process of its own, tens of seconds.
pytestmark = [
    pytest.mark.backends("tensorflow", reason="tf.distribute is TensorFlow's"),
    pytest.mark.slow,
]

ALL = os.environ.get("KERAS_BLOCKS_ALL_MODELS") == "1"
LAYERS = tuple(sorted(REGISTRY))
# Models at their smallest input, 10 classes: the cheapest with Dropout heads
# and grouped convolutions (alexnet) and with BN and Dropout (cifar10_cnn).
# test_distribute_tf trains cifar_resnet20 under the strategy through the
# training command; the others' blocks are in the registry, and all run with
# KERAS_BLOCKS_ALL_MODELS=1 (CI's time budget).
CHEAPEST = ("cifar10_cnn", "alexnet")  # alexnet: no batch normalization
MODELS = (
    *CHEAPEST,
    *(m for m in SMALLEST_FAMILY_MEMBERS if ALL and m not in CHEAPEST),
)

CASES = (*LAYERS, *MODELS)


def has_batch_normalization(case):
    if case in REGISTRY:
        return "bn_synchronized" in inspect.signature(REGISTRY[case].cls).parameters
    return case != "alexnet"


@pytest.fixture(scope="module")
def results(mirrored_parts):
    """The registry's part of distribute_child_tf.py (see conftest.py)."""
    text = (mirrored_parts("registry") / "results.jsonl").read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    found = {line["case"]: line for line in lines[1:]}
    return {"replicas": lines[0]["replicas"], **found}


def test_two_replicas(results):
    assert results["replicas"] == 2


@pytest.mark.parametrize("case", CASES)
def test_fit_save_and_load_under_mirrored_strategy(results, case):
    result = results[case]
    assert result["error"] is None, result["error"]
    assert result["difference"] <= 1e-6, result
    # Every BN was synchronized, and the loaded model's still is.
    assert all(result["synchronized"])
    assert result["loaded_synchronized"] == result["synchronized"]
    assert bool(result["synchronized"]) == has_batch_normalization(case)
