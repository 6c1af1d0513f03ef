"""Child of tests/distribute/test_distribute_checkpoint.py: one rank of a 2-process
torch.distributed (gloo, 127.0.0.1) group that trains with CheckpointManager.

    python tests/children/distribute_child_checkpoint.py RANK PORT DIRECTORY:EPOCHS ...

Trains once per DIRECTORY:EPOCHS, in order, each time with a new model and a
new manager (a new process's view; the group is started once, which costs
most of a run); prints one JSON line per run: the error raised, if any, and
what the rank restored.
"""

import json
import os
import sys

# Only when run as a script: a process that imports this file keeps its
# backend.
if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "torch"

import datetime

import keras
import numpy as np
import torch.distributed as dist

from keras_blocks.callbacks import CheckpointManager

# Keras' set_random_seed imports TensorFlow, where it can, to seed it too: a
# good part of the run's time. Nothing here uses it (on PyTorch the manager
# writes its own store), so it is not importable at all.
sys.modules["tensorflow"] = None
# How long a collective waits for the other rank: generous, for a loaded
# machine; the test's own deadline is the bound.
COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=240)


def train(rank, directory, epochs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    manager = CheckpointManager(directory, verbose=0)
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 1), "float32")
    result = {"rank": rank, "directory": directory, "error": None}
    try:
        history = model.fit(x, y, epochs=epochs, verbose=0, callbacks=[manager])
        result["epochs_run"] = history.epoch
        result["restored_epoch"] = manager.epoch
    except ValueError as error:
        result["error"] = str(error)
    print(json.dumps(result), flush=True)


def main(rank, port, runs):
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=2,
        timeout=COLLECTIVE_TIMEOUT,
    )
    for run in runs:
        directory, epochs = run.rsplit(":", 1)
        train(rank, directory, int(epochs))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
