"""Data-parallel training on the PyTorch backend: `fit`, on several processes.

Keras 3.15 distributes `fit` on TensorFlow (`tf.distribute`) and JAX
(`keras.distribution`), not on PyTorch. This is the loop of keras.io's
"Multi-GPU distributed training with PyTorch" guide (the compiled Keras model
wrapped in `torch.nn.parallel.DistributedDataParallel`, one process per
device), shaped like Keras' `fit` so that ordinary Keras callbacks run in it:

    torchrun --nproc-per-node 2 -m examples.train ... --distribute ddp

    cluster = init_process_group_from_env()  # before the model is built
    model = build(...); model.compile(...)
    history = fit(model, x, y, batch_size=256, epochs=10,
                  validation_data=(x_val, y_val), callbacks=[...])

What each epoch does, on every process (rank):
- shuffles the training arrays with the epoch's seed (the same order on every
  rank) and takes the rank's share of it, every `world_size`-th sample;
- steps through the DDP-wrapped model, whose backward pass averages the
  gradients over the ranks, and applies them with the model's Keras optimizer;
- sums the metrics' states (loss, accuracy: totals and counts) over the ranks
  after each step, so the logs are those of the global batch and every rank's
  callbacks see the same numbers;
- averages the batch normalization moving statistics over the ranks
  (`synchronize_batch_statistics`), which DDP leaves apart;
- evaluates each rank's share of the validation arrays and sums their
  metrics' states, as one `evaluate` of the whole set;
- runs the callbacks, and stops when a callback on any rank asks to.
"""

import datetime
import math
import os

import keras
import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from keras_blocks.distribute import current_cluster, synchronize_batch_statistics

# What torchrun sets for each process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def init_process_group_from_env(timeout_seconds=600):
    """Joins the process group that torchrun describes; returns the `Cluster`.

    Reads `RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` and `LOCAL_RANK`
    (the process's index on its machine). On a machine with GPUs the process
    takes GPU `LOCAL_RANK` and the group talks NCCL; without GPUs, gloo. Call
    it before building the model: Keras puts the variables on the current
    GPU when they are created.

    Args:
        timeout_seconds: int. How long a collective operation waits for the
            other processes before it fails.

    Returns:
        This process's `keras_blocks.distribute.Cluster` (rank 0 is the chief).

    Raises:
        ValueError: when torchrun's variables are missing.
    """
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise ValueError(
            f"The environment lacks {', '.join(missing)}, which torchrun sets: "
            "start the processes with `torchrun --nproc-per-node N ...`."
        )
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(
        backend,
        init_method="env://",
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        timeout=datetime.timedelta(seconds=timeout_seconds),
    )
    return current_cluster()


def fit(
    model,
    x,
    y,
    batch_size=32,
    epochs=1,
    verbose="auto",
    callbacks=None,
    validation_data=None,
    shuffle=True,
    initial_epoch=0,
    seed=0,
):
    """`model.fit` on every process of the torch.distributed group.

    Every rank calls it with the same arguments. The training set is padded,
    as PyTorch's `DistributedSampler` does, by repeating the first samples of
    the epoch's order up to a multiple of the world size, so that every rank
    takes the same number of steps; the validation set is not. Batch
    normalization in training mode normalizes with each rank's share of the
    batch. Without a process group (one process, no torchrun) it trains as
    `fit` does, without DDP.

    Args:
        model: a compiled `keras.Model`, built alike on every rank (DDP
            starts every rank from rank 0's weights).
        x: NumPy array, or a nested structure of them: the whole training set,
            on every rank.
        y: NumPy array, or a nested structure of them (one per output).
        batch_size: int. The global batch: each rank steps through
            `batch_size // world_size` samples at a time, so that the same
            `batch_size` and learning rate train the same recipe on any
            number of processes. A multiple of the world size.
        epochs: int. As `fit`'s: the index of the last epoch, counted from
            the start of the run.
        verbose: `"auto"`, 0 or 1. The progress bar, on rank 0 only.
        callbacks: list of `keras.callbacks.Callback` or None. They run on
            every rank with the same logs. `keras_blocks`' callbacks write on
            rank 0 only; give Keras' writers (`CSVLogger`, `TensorBoard`) a
            directory of their own on the other ranks, or leave them out there.
        validation_data: `(x_val, y_val)` NumPy arrays, or None.
        shuffle: bool. Whether each epoch draws a new order of the samples.
        initial_epoch: int. The epoch to start at, unless a callback sets
            `model._initial_epoch` in `on_train_begin` (`CheckpointManager`'s
            resume, as in Keras' `fit`).
        seed: int. Epoch `e`'s order is drawn with the seed `seed + e`, the
            same on every rank.

    Returns:
        The run's `keras.callbacks.History`, the same on every rank.

    Raises:
        ValueError: when `batch_size` is not a multiple of the world size, or
            when the ranks would start at different epochs (each must restore
            the same checkpoint: a directory they all see).
    """
    cluster = current_cluster(model)
    rank, world = cluster.process_index, cluster.process_count
    if batch_size % world:
        raise ValueError(
            "Invalid value for argument `batch_size`. Expected a multiple of "
            f"the number of processes ({world}). Received: batch_size={batch_size}"
        )
    local_batch = batch_size // world
    count = len(keras.tree.flatten(x)[0])
    steps = math.ceil(math.ceil(count / world) / local_batch)  # per epoch
    callbacks = keras.callbacks.CallbackList(
        callbacks,
        add_history=True,
        add_progbar=verbose != 0 and cluster.is_chief,  # one progress bar
        verbose=1 if verbose == "auto" else verbose,
        epochs=epochs,
        steps=steps,
        model=model,
    )

    model.stop_training = False
    callbacks.on_train_begin()  # CheckpointManager restores here
    initial_epoch = _same_on_every_rank(cluster, model._initial_epoch or initial_epoch)
    # Wrapped after the restore: DDP starts every rank from rank 0's weights.
    ddp_model = model  # one process, no group: as `fit`
    if dist.is_initialized():
        gpus = [torch.cuda.current_device()] if torch.cuda.is_available() else None
        ddp_model = DistributedDataParallel(model, device_ids=gpus)
    logs = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        ddp_model.train()
        order = np.arange(count)
        if shuffle:
            order = np.random.default_rng(seed + epoch).permutation(count)
        order = np.concatenate([order, order[: -count % world]])  # the padding
        shard = order[rank::world]
        for step in range(steps):
            callbacks.on_train_batch_begin(step)
            batch = shard[step * local_batch : (step + 1) * local_batch]
            _train_step(ddp_model, model, _take(x, batch), _take(y, batch))
            logs = _global_metrics(model)
            callbacks.on_train_batch_end(step, logs)
            model.stop_training = _any_rank(model.stop_training)
            if model.stop_training:
                break

        ddp_model.eval()
        # Before validation and the callbacks: the model every rank evaluates
        # and a checkpoint saves has the statistics of all ranks' samples.
        synchronize_batch_statistics(model)
        epoch_logs = dict(logs)
        if validation_data is not None:
            val_logs = _evaluate(model, *validation_data, local_batch, rank, world)
            epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
        callbacks.on_epoch_end(epoch, epoch_logs)
        logs = epoch_logs
        model.stop_training = _any_rank(model.stop_training)
        if model.stop_training:
            break

    if epochs > initial_epoch:
        model.optimizer.finalize_variable_values(model.trainable_variables)
    callbacks.on_train_end(logs)
    return next(
        c for c in callbacks.callbacks if isinstance(c, keras.callbacks.History)
    )


def _train_step(ddp_model, model, x, y):
    """One step of Keras' torch `train_step`, the forward pass through DDP."""
    y_pred = ddp_model(x, training=True)
    model.zero_grad()
    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
    _loss_metric(model).update_state(loss, sample_weight=len(keras.tree.flatten(x)[0]))
    # DDP's hooks average each gradient over the ranks as backward computes it.
    model.optimizer.scale_loss(loss).backward()
    variables = model.trainable_variables
    with torch.no_grad():
        model.optimizer.apply([v.value.grad for v in variables], variables)
    model.compute_metrics(x, y, y_pred)


def _evaluate(model, x, y, local_batch, rank, world):
    """The metrics of the whole validation set: each rank evaluates its share."""
    model.reset_metrics()
    indices = np.arange(len(keras.tree.flatten(x)[0]))[rank::world]
    with torch.no_grad():
        for start in range(0, len(indices), local_batch):
            batch = indices[start : start + local_batch]
            model.test_step((_take(x, batch), _take(y, batch)))
    return _global_metrics(model)


def _take(arrays, indices):
    """The samples `indices` of NumPy arrays, as tensors on the model's device."""
    return keras.tree.map_structure(
        lambda a: keras.ops.convert_to_tensor(a[indices]), arrays
    )


def _loss_metric(model):
    # Keras' train step updates its loss tracker, the metric named "loss".
    return next(m for m in model.metrics if m.name == "loss")


def _global_metrics(model):
    """The model's metrics over every rank's samples, as Python floats.

    Keras' metrics keep sums (a mean: its total and count; accuracy: the
    correct and seen samples), so the sum of each state over the ranks is the
    state of one metric that saw all of them. The local states are left as
    they are: the metrics go on accumulating.
    """
    variables = [v for metric in model.metrics for v in metric.variables]
    if dist.is_initialized() and dist.get_world_size() > 1 and variables:
        local = [v.value.detach().reshape(-1).double() for v in variables]
        summed = torch.cat(local)
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        parts = torch.split(summed, [t.numel() for t in local])
        mapping = [
            (v, part.reshape(v.shape).to(v.value.dtype))
            for v, part in zip(variables, parts, strict=True)
        ]
        with keras.StatelessScope(state_mapping=mapping):
            results = model.get_metrics_result()
    else:
        results = model.get_metrics_result()
    # Python numbers (a float for a scalar metric), as the progress bar and
    # the CSV logger take them.
    return {name: keras.ops.convert_to_numpy(v).tolist() for name, v in results.items()}


def _any_rank(flag):
    """Whether `flag` is true on any rank: a stop on one rank stops them all."""
    return bool(current_cluster().all_gather([bool(flag)], "int64").any())


def _same_on_every_rank(cluster, initial_epoch):
    """`initial_epoch`, once every rank has checked that it starts there."""
    epochs = cluster.all_gather([initial_epoch], "int64")[:, 0]
    if (epochs != initial_epoch).any():
        raise ValueError(
            f"The ranks would start at different epochs ({epochs.tolist()}, "
            "by rank): each must restore the same checkpoint. Give every rank "
            "the same checkpoint directory, on a file system they share."
        )
    return int(initial_epoch)
