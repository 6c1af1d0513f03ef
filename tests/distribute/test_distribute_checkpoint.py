"""CheckpointManager in a cluster of processes: the chief writes, every
process restores the same checkpoint from a directory they all see.

Two torch.distributed processes (gloo on 127.0.0.1, the cheapest cluster to
start) call the same code path as TensorFlow's and JAX's workers
(`keras_blocks.distribute.current_cluster`); PyTorch backend only. The runs
are the `checkpoint` case of the DDP group that conftest.py's `ddp_ranks`
starts: each run a new model and a new manager, as in a new process.
"""

import json

import keras
import numpy as np
import pytest

from keras_blocks.callbacks import CheckpointManager

pytestmark = [
    pytest.mark.backends("torch", reason="a torch.distributed group"),
    pytest.mark.slow,  # two processes, tens of seconds
]


def write_alone(directory):
    """A checkpoint the other rank cannot see, written by this process alone:
    the same files as the children's (a checkpoint does not depend on the
    number of processes)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 1), "float32")
    manager = CheckpointManager(directory, verbose=0)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[manager])
    assert (directory / "checkpoint.json").exists()


@pytest.fixture(scope="module")
def runs(ddp_ranks):
    """Both ranks in one directory, 2 epochs then 3; then each rank in its own
    (rank 0 in the one `write_alone` wrote)."""
    output = ddp_ranks("checkpoint")
    results = [
        [json.loads(line) for line in (output / f"rank{rank}.jsonl").open()]
        for rank in range(2)
    ]
    first, resumed, apart = ([rank[i] for rank in results] for i in range(3))
    return dict(
        shared=output / "checkpoints",
        elsewhere=output / "elsewhere",
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
