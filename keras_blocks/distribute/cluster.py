"""Which process of a training cluster this is, on each backend's engine.

Keras leaves this to the user: none of its callbacks asks whether it runs on
the chief. `current_cluster` reads it from the engine that trains the model:

- TensorFlow: the model's `tf.distribute` strategy. `MirroredStrategy` is one
  process; `MultiWorkerMirroredStrategy` has one process per task of its
  cluster (`TF_CONFIG`), and its chief is the task whose
  `strategy.extended.should_checkpoint` is true (task 0 of "worker" when the
  cluster has no "chief" job).
- JAX: `jax.process_count()` processes (`keras.distribution.initialize`);
  process 0 is the chief.
- PyTorch: the `torch.distributed` process group (torchrun, DDP); rank 0 is
  the chief.

`Cluster.all_gather` is the one collective operation the callbacks need: every
process passes a few numbers and gets everyone's. It is a collective: every
process of the cluster must call it, in the same order.
"""

import dataclasses
from typing import Any

import keras
import numpy as np

ENGINES = ("local", "tf.distribute", "jax", "torch")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place among the processes that train one model.

    Attributes:
        engine: str. `"local"` (one process, though it may drive several
            devices, as `MirroredStrategy` and `keras.distribution` do),
            `"tf.distribute"` (`MultiWorkerMirroredStrategy`), `"jax"`
            (several JAX processes) or `"torch"` (a `torch.distributed` group).
        process_index: int. This process's index, 0 to `process_count - 1`.
        process_count: int. How many processes train the model.
        is_chief: bool. Whether this process writes checkpoints and logs.
        strategy: the `tf.distribute.Strategy` on TensorFlow, else None.

    Examples:
        >>> import keras_blocks
        >>> cluster = keras_blocks.distribute.current_cluster()
        >>> cluster.process_count, cluster.is_chief
        (1, True)
        >>> cluster.all_gather([3, 4], "int64").tolist()  # one row per process
        [[3, 4]]
    """

    engine: str
    process_index: int
    process_count: int
    is_chief: bool
    strategy: Any = None

    def all_gather(self, values: Any, dtype: str = "float64") -> np.ndarray:
        """Every process's `values`, one row per process, in process order.

        Args:
            values: sequence of numbers, of the same length on every process.
            dtype: str. `"float64"` or `"int64"`; on JAX without
                `jax_enable_x64` they travel as 32-bit numbers.

        Returns:
            A NumPy array of shape `(process_count, len(values))`.
        """
        values = np.asarray(values, dtype=dtype).reshape(-1)
        if self.process_count == 1:
            return values[None]
        gather = {
            "tf.distribute": _tf_all_gather,
            "jax": _jax_all_gather,
            "torch": _torch_all_gather,
        }[self.engine]
        return np.asarray(gather(self, values), dtype=dtype).reshape(
            self.process_count, -1
        )


def current_cluster(model: Any = None) -> Cluster:
    """The cluster that trains `model` (or this process's, without a model).

    Args:
        model: a `keras.Model` or None. On TensorFlow its strategy (the one
            whose scope built it) says which processes train it; without a
            model, the strategy of the current scope.

    Returns:
        A `Cluster`.

    Examples:
        >>> import keras
        >>> import keras_blocks
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> keras_blocks.distribute.current_cluster(model).engine  # one process
        'local'
    """
    backend = keras.config.backend()
    if backend == "tensorflow":
        return _tf_cluster(model)
    if backend == "jax":
        import jax

        count = jax.process_count()
        if count > 1:
            index = jax.process_index()
            return Cluster("jax", index, count, index == 0)
    elif backend == "torch":
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            rank = dist.get_rank()
            return Cluster("torch", rank, dist.get_world_size(), rank == 0)
    return Cluster("local", 0, 1, True)


def _tf_cluster(model):
    import tensorflow as tf

    strategy = getattr(model, "distribute_strategy", None)
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    # The processes that train: the chief (if any) first, then the workers,
    # the order in which their replicas are numbered.
    tasks = [
        (job, index)
        for job in ("chief", "worker")
        for index in range(len(spec.get(job, ())))
    ]
    if len(tasks) <= 1:
        return Cluster("local", 0, 1, True, strategy)
    index = tasks.index((resolver.task_type, int(resolver.task_id)))
    chief = bool(strategy.extended.should_checkpoint)
    return Cluster("tf.distribute", index, len(tasks), chief, strategy)


def _tf_all_gather(cluster, values):
    import tensorflow as tf

    strategy = cluster.strategy

    def gather():
        context = tf.distribute.get_replica_context()
        return context.all_gather(tf.constant(values[None]), axis=0)

    gathered = strategy.experimental_local_results(strategy.run(gather))[0]
    # One row per replica, numbered process by process: keep each process's first.
    per_process = strategy.num_replicas_in_sync // cluster.process_count
    return gathered.numpy()[::per_process]


def _jax_all_gather(cluster, values):
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(values)


def _torch_all_gather(cluster, values):
    import torch
    import torch.distributed as dist

    # NCCL groups exchange GPU tensors only.
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.from_numpy(values.copy()).to(device)
    rows = [torch.empty_like(tensor) for _ in range(cluster.process_count)]
    dist.all_gather(rows, tensor)
    return torch.stack(rows).cpu().numpy()
