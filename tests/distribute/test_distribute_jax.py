"""`keras.distribution` on JAX: data parallelism over 2 CPU devices and over 2
processes.

The runs are `distribute_child_jax.py`, in processes of their own (JAX's
devices are set before it starts), each with a timeout:

- 2 devices in one process (one for both of these): `DataParallel` trains to
  the weights of one device, batch-normalization statistics included, which
  shows that with a global batch sharded under `jit` the statistics are
  those of the global batch (XLA reduces them across devices); DropPath
  draws the same masks. Then every layer of the property registry and
  reference models train, save to `.keras` and load back with equal outputs
  under `DataParallel`.
- 2 processes (`keras.distribution.initialize` on 127.0.0.1, 1 device each):
  `fit` with the library's callbacks trains both to the weights of one
  device on the same global batches, and only process 0 writes files
  (`CheckpointManager`'s and the event files).

XLA's CPU compiler runs without its optimizations in the children
(`XLA_FLAGS`): they compile in about half the time, and every comparison is
between runs compiled alike (or within 1e-5).
"""

import json
import os
import re
import sys

import numpy as np
import pytest

from tests import CHILDREN
from tests.children import distribute_child_jax as child
from tests.distribute.processes import free_ports, python_path, run_together

pytestmark = [
    pytest.mark.backends("jax", reason="keras.distribution is JAX's in 3.15"),
    pytest.mark.slow,  # processes of their own, tens of seconds each
]

CHILD = CHILDREN / "distribute_child_jax.py"
# Seconds for a run: generous, for a loaded machine (a run takes 20 to 60 s on
# 2 busy cores); the workers stop themselves before (HANG_SECONDS).
TIMEOUT = 540
# tools/run_all.py's flags for the JAX pass: the runs in this process (the
# one-device reference of the workers) are compiled alike. The third (XLA's
# older elemental emitters) compiles a small computation in about 60% of the
# time.
FAST_COMPILE = (
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
    "--xla_cpu_use_fusion_emitters=false"
)
TOLERANCE = 1e-5
PROCESSES = child.PROCESSES


def run_children(arguments, output, devices, timeout=TIMEOUT):
    """Runs one child per argument list, all at once, each with its own
    TMPDIR and `devices` CPU devices; returns their exit codes and logs."""
    commands = []
    for index, args in enumerate(arguments):
        temporary = output / f"tmp{index}"
        temporary.mkdir(parents=True)
        env = {
            **os.environ,
            "KERAS_BACKEND": "jax",
            "JAX_NUM_CPU_DEVICES": str(devices),
            "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": FAST_COMPILE,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TMPDIR": str(temporary),
            "PYTHONPATH": python_path(),
            "CUDA_VISIBLE_DEVICES": "",
        }
        for name in list(env):
            if name.startswith("KERAS_DISTRIBUTION_"):
                del env[name]
        commands.append(([sys.executable, str(CHILD), *args], env))
    return run_together(commands, output, timeout, tail=4000)


# -- One process, 2 devices: the same weights as one device ---------------------


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
    """One process of 2 devices for the batch-normalization runs and the
    registry's cases (a start of JAX is a good part of each)."""
    output = tmp_path_factory.mktemp("two_devices")
    codes, logs = run_children(
        [["two_devices", str(output), *CASES]],
        output,
        devices=2,
        timeout=TIMEOUT * (1 + max(1, len(CASES) // 6)),
    )
    return output, codes, logs


@pytest.fixture(scope="module")
def batch_norm_runs(two_devices):
    output, codes, logs = two_devices
    error = output / "batch_norm.error"
    assert not error.exists(), error.read_text()
    assert codes == [0], logs
    return output


def load_run(output, name):
    arrays = np.load(output / f"{name}.npz")
    paths = json.loads((output / f"{name}.json").read_text())["paths"]
    runs = {}
    for key in arrays.files:
        run, index = key.split("/")
        runs.setdefault(run, {})[paths[int(index)]] = arrays[key]
    return runs


def largest_differences(a, b):
    return {path: float(np.abs(a[path] - b[path]).max()) for path in a}


def test_batch_statistics_under_data_parallel_are_the_global_batchs(batch_norm_runs):
    runs = load_run(batch_norm_runs, "batch_norm")
    one, two = runs["one"], runs["two"]
    statistics = [p for p in one if p.endswith(("moving_mean", "moving_variance"))]
    assert len(statistics) == 2 * 7  # BN: the stem's 1, 2 and 3 + the shortcut's
    # Training moved them: the comparison sees trained statistics.
    assert all(
        np.abs(one[p] - (p.endswith("variance"))).max() > 0.05 for p in statistics
    )
    differences = largest_differences(one, two)
    assert max(differences.values()) <= TOLERANCE, differences
    # Had each device normalized its own half, device 0 would hold the
    # statistics of a run on its halves alone (whose mean is larger by 2):
    # far from these, so the comparison can tell.
    control = largest_differences({p: one[p] for p in statistics}, runs["half"])
    assert min(control.values()) > 100 * TOLERANCE, control


def test_drop_path_draws_the_same_masks_under_data_parallel(batch_norm_runs):
    # JAX's random bits do not depend on how the batch is sharded: each image
    # keeps its mask of the one-device run.
    runs = load_run(batch_norm_runs, "drop_path")
    differences = largest_differences(runs["one"], runs["two"])
    assert max(differences.values()) <= TOLERANCE, differences
    reference = load_run(batch_norm_runs, "batch_norm")["one"]  # rate 0
    assert max(largest_differences(reference, runs["one"]).values()) > 1e-2


# -- One process, 2 devices: every layer and reference models ----------------

# The cheapest model of three families, at its smallest input, after the
# registry's layers: about 55 s of the child's time on 2 busy cores (19 s for
# the layers, 11, 6 and 12 s for the models). Each of them adds to the layers
# a whole model's save (ResNet's CIFAR shortcuts, Dropout, LRN and a dense
# head); the other families' cheapest took 20 s (resnet18), 17 s (vgg11_bn),
# 58 s (googlenet) and 83 s (efficientnet_b0) and passed, and their blocks are
# in the layers case. `KERAS_BLOCKS_ALL_MODELS=1` runs every named model.
CHEAP_MODELS = ("cifar_resnet20", "cifar10_cnn", "alexnet")
ALL = os.environ.get("KERAS_BLOCKS_ALL_MODELS") == "1"


def registry_cases():
    if not ALL:
        return ("layers", *CHEAP_MODELS)
    from keras_blocks.models import list_models

    return ("layers", *list_models())


CASES = registry_cases()


@pytest.fixture(scope="module")
def registry_results(two_devices):
    output, codes, logs = two_devices
    error = output / "registry.error"
    if error.exists():
        logs = error.read_text() + logs
    results = {}
    for line in (output / "child0.log").read_text().splitlines():
        if line.startswith('{"case"'):
            result = json.loads(line)
            results[result["case"]] = result
    return results, codes == [0] and not error.exists(), logs


def test_every_case_ran(registry_results):
    from tests.layers.test_properties import NAMES

    results, ran, logs = registry_results
    assert ran, logs
    assert sorted(results) == sorted(CASES)
    assert set(NAMES) <= set(results["layers"]["layers"])


@pytest.mark.parametrize("case", CASES)
def test_trains_saves_and_loads_under_data_parallel(registry_results, case):
    results, _, logs = registry_results
    assert case in results, logs
    result = results[case]
    assert result["finite"], result
    assert result["same_config"], result
    assert result["loaded_weights"] == result["weights"]
    assert result["replicated"], result  # loaded in the distribution's layout
    assert result["max_difference"] <= 1e-6, result


# -- 2 processes ---------------------------------------------------------------

# The workers' `fit` has a `CheckpointManager`, whose chief alone saves: it
# does so without the distribution (see `_checkpoint_store._without_distribution`:
# Keras' `save_weights` creates a variable, a collective step on JAX processes,
# and the chief waited there for process 1 until both timed out).


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    """Two JAX processes of `keras.distribution`; process 0 is the chief."""
    output = tmp_path_factory.mktemp("workers")
    (port,) = map(str, free_ports(1))
    flags = ["--checkpoints"]
    codes, logs = run_children(
        [["worker", str(output), str(i), port, *flags] for i in range(PROCESSES)],
        output,
        devices=1,
    )
    results = []
    for index in range(PROCESSES):
        path = output / f"worker{index}.json"
        results.append(json.loads(path.read_text()) if path.exists() else None)
    return dict(output=output, codes=codes, logs=logs, results=results)


def one_process_run():
    """The workers' training on this process's one device, without files."""
    from keras_blocks.callbacks import ReduceLROnPlateau

    x, y, _, _ = child.worker_data(0)
    model = child.worker_model()
    reducer = ReduceLROnPlateau(
        "val_loss", factor=child.FACTOR, patience=1, min_delta=10.0
    )
    history = model.fit(
        x,
        y,
        batch_size=child.WORKER_BATCH,
        epochs=child.WORKER_EPOCHS,
        shuffle=False,
        verbose=0,
        validation_data=(x, y),
        callbacks=[reducer],
    )
    return model, history.history


def test_processes_train_as_one_device_does(workers):
    assert workers["codes"] == [0] * PROCESSES, workers["logs"]
    chief, other = workers["results"]
    assert chief["devices"] == other["devices"] == PROCESSES
    assert chief["cluster"] == ["jax", 0, PROCESSES] and chief["is_chief"]
    assert other["cluster"] == ["jax", 1, PROCESSES] and not other["is_chief"]
    # Keras 3.15 refuses NumPy arrays unless auto_shard_dataset=False.
    for result in workers["results"]:
        assert "must be provided as a `tf.data.Dataset`" in result["numpy_refused"]
    # Metrics are computed on the global batch: the same logs on both.
    assert chief["history"] == other["history"]
    np.testing.assert_allclose(
        chief["learning_rate"], child.RATE * child.FACTOR**2, rtol=1e-6
    )
    weights = [np.load(workers["output"] / f"worker{i}.npz") for i in range(PROCESSES)]
    for name in weights[0].files:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])
    # The global batches are the one device's: process i fed the i-th part
    # of each, and Keras joins the parts in process order.
    model, history = one_process_run()
    assert len(model.weights) == len(weights[0].files)
    for i, weight in enumerate(model.weights):
        np.testing.assert_allclose(
            weights[0][f"arr_{i}"],
            np.asarray(weight),
            atol=TOLERANCE,
            err_msg=weight.path,
        )
    for key, values in history.items():
        np.testing.assert_allclose(
            chief["history"][key], values, atol=TOLERANCE, err_msg=key
        )


def test_only_process_0_writes_events(workers):
    # TensorBoardImageLogger's chief gating (325e4ba): with every process
    # taken for the chief, process 1 wrote an event file too and this failed.
    assert workers["codes"] == [0] * PROCESSES, workers["logs"]
    chief, other = workers["results"]
    assert other["writes"] == []  # Python's own writes; TensorFlow's follow
    events = os.listdir(workers["output"] / "shared" / "logs")
    writers = {int(re.search(r"\.(\d+)\.\d+\.v2$", name).group(1)) for name in events}
    assert writers == {chief["pid"]}, events


def test_only_process_0_writes_checkpoints(workers):
    assert workers["codes"] == [0] * PROCESSES, workers["logs"]
    chief, other = workers["results"]
    checkpoints = workers["output"] / "shared" / "checkpoints"
    assert other["writes"] == []  # the manager's own files (h5py's open in C)
    assert any("checkpoint.json" in write for write in chief["writes"])
    assert (checkpoints / "checkpoint.json").exists()
    assert {p.name for p in checkpoints.glob("ckpt-*")} == {
        f"ckpt-{(child.WORKER_SAMPLES // child.WORKER_BATCH) * epoch}"
        for epoch in (1, 2, 3)
    }
