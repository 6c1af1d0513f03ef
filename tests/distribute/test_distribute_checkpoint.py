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

pytestmark = [
    pytest.mark.backends("torch", reason="a torch.distributed group"),
    pytest.mark.slow,  # two processes, tens of seconds
]

CHILD = CHILDREN / "distribute_child_checkpoint.py"
TIMEOUT = 400  # seconds for both ranks (about 15 s on 2 busy cores)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(runs):
    """Two ranks, each training once per (directory, epochs) of its list, in
    one process; returns each rank's results, run by run."""
    port = str(_free_port())
    env = {**os.environ, "KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": ""}
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), str(rank), port]
            + [f"{directory}:{epochs}" for directory, epochs in rank_runs],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank, rank_runs in enumerate(runs)
    ]
    results = []
    try:
        for child in children:
            out, err = child.communicate(timeout=TIMEOUT)
            assert child.returncode == 0, err[-3000:]
            results.append([json.loads(line) for line in out.strip().splitlines()])
    finally:
        for child in children:
            child.kill()
            child.wait()
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both ranks in one directory, 2 epochs then 3; then each rank in its own.

    The group starts once (most of the time of a run): each run is a new
    model and a new manager, as in a new process.
    """
    tmp_path = tmp_path_factory.mktemp("cluster")
    shared = tmp_path / "checkpoints"
    chief, elsewhere = tmp_path / "chief", tmp_path / "elsewhere"
    # A checkpoint the other rank cannot see, written by this process alone:
    # the same files as the children's (a checkpoint does not depend on the
    # number of processes).
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 1), "float32")
    manager = CheckpointManager(chief, verbose=0)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[manager])
    assert (chief / "checkpoint.json").exists()
    results = _run(
        [
            [(shared, 2), (shared, 3), (chief, 2)],
            [(shared, 2), (shared, 3), (elsewhere, 2)],
        ]
    )
    first, resumed, apart = ([rank[i] for rank in results] for i in range(3))
    return dict(
        shared=shared,
        elsewhere=elsewhere,
        first=first,
        resumed=resumed,
        apart=apart,
    )


def test_chief_writes_and_every_process_restores_the_same(runs):
    shared, first, resumed = runs["shared"], runs["first"], runs["resumed"]
    # Both ranks trained; a second writer would have met the chief's lock.
    assert [r["error"] for r in first] == [None, None]
    assert [r["epochs_run"] for r in first] == [[0, 1], [0, 1]]
    assert (shared / "checkpoint.json").exists()
    assert not list(shared.glob(".cluster-check-*"))  # the marker is removed
    assert [r["error"] for r in resumed] == [None, None]
    assert [r["epochs_run"] for r in resumed] == [[2], [2]]
    assert [r["restored_epoch"] for r in resumed] == [3, 3]


def test_a_directory_a_process_cannot_see_stops_every_process(runs):
    for result in runs["apart"]:
        assert "process(es) [1] of 2 do not see the files the chief writes" in (
            result["error"] or ""
        ), result
    assert not (runs["elsewhere"] / "checkpoint.json").exists()
