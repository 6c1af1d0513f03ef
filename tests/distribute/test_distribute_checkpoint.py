"""CheckpointManager in a cluster of processes: the chief writes, every
process restores the same checkpoint from a directory they all see.

Two torch.distributed processes (gloo on 127.0.0.1, the cheapest cluster to
start) call the same code path as TensorFlow's and JAX's workers
(`keras_blocks.distribute.current_cluster`); PyTorch backend only.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_blocks.callbacks import CheckpointManager
from tests import CHILDREN

pytestmark = pytest.mark.skipif(
    keras.config.backend() != "torch", reason="a torch.distributed group"
)

CHILD = CHILDREN / "distribute_child_checkpoint.py"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(directories, epochs):
    port = str(_free_port())
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), str(rank), port, str(d), str(epochs)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank, d in enumerate(directories)
    ]
    results = []
    try:
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            child.kill()
    return results


def test_chief_writes_and_every_process_restores_the_same(tmp_path):
    shared = tmp_path / "checkpoints"
    first = _run([shared, shared], epochs=2)
    # Both ranks trained; a second writer would have met the chief's lock.
    assert [r["error"] for r in first] == [None, None]
    assert [r["epochs_run"] for r in first] == [[0, 1], [0, 1]]
    assert (shared / "checkpoint.json").exists()
    assert not list(shared.glob(".cluster-check-*"))  # the marker is removed
    resumed = _run([shared, shared], epochs=3)
    assert [r["epochs_run"] for r in resumed] == [[2], [2]]
    assert [r["restored_epoch"] for r in resumed] == [3, 3]


def test_a_directory_a_process_cannot_see_stops_every_process(tmp_path):
    chief, elsewhere = tmp_path / "chief", tmp_path / "elsewhere"
    # A checkpoint the other rank cannot see, written by this process alone:
    # the same files as the children's (a checkpoint does not depend on the
    # number of processes), without starting two of them (~15 s).
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 1), "float32")
    manager = CheckpointManager(chief, verbose=0)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[manager])
    assert (chief / "checkpoint.json").exists()
    results = _run([chief, elsewhere], epochs=2)
    for result in results:
        assert "process(es) [1] of 2 do not see the files the chief writes" in (
            result["error"] or ""
        ), result
    assert not (elsewhere / "checkpoint.json").exists()
