"""One rank of the 2-process DDP run that tests/distribute/conftest.py's
`ddp_ranks` starts, for test_distribute_torch.py and
test_distribute_checkpoint.py.

    RANK=r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=p \\
        python tests/children/distribute_child_torch.py OUTPUT_DIRECTORY CASE ...

Joins the gloo group through `examples._ddp.init_process_group_from_env` once
(the start of a process and its group is most of what a case costs) and runs
each CASE in order, into OUTPUT_DIRECTORY/CASE: `steps` (gradients, weights
and batch statistics across ranks), `loop` (`_ddp.fit` with the library's
callbacks, then a resumed run), `checkpoint` (`CheckpointManager` in a
directory both ranks see, then in one each) or `equal` (`_ddp.fit` on 2 ranks
against Keras' `fit` on one; it leaves the group, so it comes last). Every
rank writes what it saw to rank<r>.npz (and .json, .jsonl); the tests
compare.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import torch
import torch.distributed as dist

from examples import _ddp
from keras_blocks.callbacks import (
    CheckpointManager,
    ReduceLROnPlateau,
    TensorBoardImageLogger,
)
from keras_blocks.distribute import synchronize_batch_statistics
from keras_blocks.layers import ConvBNAct, ResidualBlock

SHAPE = (8, 8, 1)
CLASSES = 10
LEARNING_RATE = 0.05


def bn_model():
    """ConvBNAct, ResidualBlock and a dense head: 3 batch normalizations."""
    inputs = keras.Input(SHAPE)
    h = ConvBNAct(8)(inputs)
    h = ResidualBlock(8)(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(h))


def plain_model():
    """The same without batch normalization: DDP then equals one process."""
    inputs = keras.Input(SHAPE)
    h = ConvBNAct(8, batch_norm=False)(inputs)
    h = ConvBNAct(8, strides=2, batch_norm=False)(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(h))


def compile_model(model):
    model.compile(
        keras.optimizers.SGD(LEARNING_RATE, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def digits(count, offset=0):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32").reshape(-1, *SHAPE)
    return x[offset : offset + count], y[offset : offset + count].astype("int32")


def gathered(values):
    """Every rank's flat float64 vector of `values`, one row per rank."""
    flat = torch.cat([torch.as_tensor(np.asarray(v)).reshape(-1) for v in values])
    flat = flat.double()
    rows = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(rows, flat)
    return torch.stack(rows).numpy()


def moving_statistics(model):
    return [v for v in model.non_trainable_variables if "moving_" in v.path]


def steps_case(rank, output):
    """DDP's broadcast, its averaged gradients, and the batch statistics."""
    keras.utils.set_random_seed(rank)  # each rank its own initial weights
    model = compile_model(bn_model())
    model.optimizer.build(model.trainable_variables)
    weights_at_start = gathered(model.weights)
    ddp_model = torch.nn.parallel.DistributedDataParallel(model)
    weights_after_wrap = gathered(model.weights)

    x, y = digits(16, offset=16 * rank)  # each rank its own samples
    x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)

    def gradients(network):
        model.zero_grad()
        loss = model.compute_loss(x=x, y=y, y_pred=network(x, training=True))
        loss.backward()
        return [v.value.grad.clone() for v in model.trainable_variables]

    local_gradients = gathered(gradients(model))  # without DDP: this rank's
    ddp_gradients = gathered(gradients(ddp_model))
    for _ in range(3):
        _ddp._train_step(ddp_model, model, x, y)
    statistics_before = gathered(moving_statistics(model))
    synchronized = synchronize_batch_statistics(model)
    np.savez(
        output / f"rank{rank}.npz",
        weights_at_start=weights_at_start,
        weights_after_wrap=weights_after_wrap,
        local_gradients=local_gradients,
        ddp_gradients=ddp_gradients,
        trainable_after_steps=gathered(model.trainable_variables),
        statistics_before=statistics_before,
        statistics_after=gathered(moving_statistics(model)),
        synchronized=synchronized,
    )


class StopOnRank(keras.callbacks.Callback):
    """Sets `stop_training` on one rank, at one batch; counts the batches."""

    def __init__(self, rank, batch):
        super().__init__()
        self.rank, self.batch, self.batches = rank, batch, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if batch == self.batch and dist.get_rank() == self.rank:
            self.model.stop_training = True


def loop_case(rank, output):
    """`_ddp.fit` with the library's callbacks, in directories the ranks share."""
    keras.utils.set_random_seed(0)
    x, y = digits(96)
    validation = digits(40, offset=96)
    model = compile_model(bn_model())
    run = output / "run"

    def callbacks():
        return [
            CheckpointManager(run / "checkpoints", seed=0, verbose=0),
            TensorBoardImageLogger(run / "images", validation, num_images=4),
            # min_delta=10: no epoch improves on the first, so the rate halves
            # at every epoch after it, on every rank alike.
            ReduceLROnPlateau(factor=0.5, patience=1, min_delta=10.0),
        ]

    first = _ddp.fit(
        model, x, y, batch_size=32, epochs=2, verbose=0,
        callbacks=callbacks(), validation_data=validation,
    )  # fmt: skip
    # A new run in the same directories: restored after epoch 2, it runs the
    # third epoch only.
    resumed = _ddp.fit(
        model, x, y, batch_size=32, epochs=3, verbose=0,
        callbacks=callbacks(), validation_data=validation,
    )  # fmt: skip
    rate = keras.ops.convert_to_numpy(model.optimizer.learning_rate)
    weights = gathered(model.weights)
    # A callback that stops training on rank 1 only, in the second batch:
    # every rank stops there (a rank going on alone would wait forever).
    stopper = StopOnRank(1, batch=1)
    stopped = _ddp.fit(model, x, y, batch_size=32, epochs=5, callbacks=[stopper])
    np.savez(
        output / f"rank{rank}.npz",
        weights=weights,
        learning_rate=gathered([rate]),
    )
    (output / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "first": {"epoch": first.epoch, "history": first.history},
                "resumed": {"epoch": resumed.epoch, "history": resumed.history},
                "stopped": {"epoch": stopped.epoch, "batches": stopper.batches},
            }
        )
    )


def equal_case(rank, output):
    """`_ddp.fit` on 2 ranks, then Keras' `fit` on rank 0 alone, same batches."""
    x, y = digits(64)
    validation = digits(31, offset=64)  # 16 and 15 samples a rank

    def run(fit):
        keras.utils.set_random_seed(0)
        model = compile_model(plain_model())
        history = fit(
            model, x, y, batch_size=16, epochs=3, verbose=0, shuffle=False,
            validation_data=validation,
            callbacks=[ReduceLROnPlateau(factor=0.5, patience=1, min_delta=10.0)],
        )  # fmt: skip
        return model, history.history

    model, logs = run(_ddp.fit)
    weights = gathered(model.weights)
    # The reference runs alone: out of the group, which the callbacks would
    # otherwise wait on.
    dist.destroy_process_group()
    arrays, one = {}, None
    if rank == 0:
        reference, one = run(lambda model, *args, **kwargs: model.fit(*args, **kwargs))
        weights_of_one = [keras.ops.convert_to_numpy(w) for w in reference.weights]
        arrays["one_weights"] = np.concatenate([w.reshape(-1) for w in weights_of_one])
    np.savez(output / f"rank{rank}.npz", ddp_weights=weights, **arrays)
    (output / f"rank{rank}.json").write_text(json.dumps({"ddp": logs, "one": one}))


def checkpoint_run(rank, directory, epochs):
    """A new model and manager in `directory`, as in a new process; returns
    the error raised, if any, and what the rank restored."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    manager = CheckpointManager(directory, verbose=0)
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 1), "float32")
    result = {"rank": rank, "directory": str(directory), "error": None}
    try:
        history = model.fit(x, y, epochs=epochs, verbose=0, callbacks=[manager])
        result["epochs_run"] = history.epoch
        result["restored_epoch"] = manager.epoch
    except ValueError as error:
        result["error"] = str(error)
    return result


def checkpoint_case(rank, output):
    """Both ranks in `checkpoints`, 2 epochs then 3; then rank 0 in `chief`
    (where the test wrote a checkpoint alone) and rank 1 in `elsewhere`: a
    directory the other rank cannot see."""
    runs = [
        (output / "checkpoints", 2),
        (output / "checkpoints", 3),
        (output / ("chief" if rank == 0 else "elsewhere"), 2),
    ]
    results = [checkpoint_run(rank, directory, epochs) for directory, epochs in runs]
    (output / f"rank{rank}.jsonl").write_text(
        "".join(json.dumps(result) + "\n" for result in results)
    )


CASES = {
    "steps": steps_case,
    "loop": loop_case,
    "checkpoint": checkpoint_case,
    "equal": equal_case,
}

if __name__ == "__main__":
    output, cases = Path(sys.argv[1]), sys.argv[2:]
    # A collective waits this long for the other rank: generous, for a
    # loaded machine; the test's own deadline is the bound.
    cluster = _ddp.init_process_group_from_env(timeout_seconds=300)
    try:
        for case in cases:
            (output / case).mkdir(parents=True, exist_ok=True)
            CASES[case](cluster.process_index, output / case)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    # Everything the tests read is written and closed, and the group is gone:
    # the interpreter's teardown of PyTorch and TensorFlow (seconds of CPU)
    # is skipped.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
