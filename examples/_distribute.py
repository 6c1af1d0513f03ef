"""`examples/train.py --distribute`: the engine each backend trains with on
several devices or machines, set up before anything else touches a device.

- `mirrored` (TensorFlow): `tf.distribute.MirroredStrategy` over this
  machine's GPUs (or, with `--cpu-devices N` on a machine without any, N
  logical CPU devices: the set-up, not a speed-up).
- `multi_worker` (TensorFlow): one process per machine, the cluster in
  `TF_CONFIG`; `keras_blocks.distribute.MultiWorkerMirroredStrategy`, which
  Keras 3.15's `fit` can use.
- `data_parallel` (JAX): `keras.distribution.DataParallel` over every device
  of every process; several processes when `KERAS_DISTRIBUTION_*` name them
  (`keras.distribution.initialize`). The data go in `tf.data` global batches
  that split evenly over the devices (Keras 3.15 shards no other input
  across processes; the last partial training batch of an epoch is
  dropped).
- `ddp` (PyTorch): `torch.nn.parallel.DistributedDataParallel` in
  `examples/_ddp.py`'s loop, one process per device, started by `torchrun`.

`--batch-size` is the global batch, shared among the replicas. The batch
normalization's moving statistics are averaged over the replicas at the end
of each epoch (`keras_blocks.distribute.synchronize_batch_statistics`), so
that every replica evaluates, and every checkpoint holds, the same model.
"""

import contextlib
import os

import keras

from examples._cli import DISTRIBUTE as CHOICES
from examples._cli import Refusal
from keras_blocks.distribute import current_cluster, synchronize_batch_statistics


class Engine:
    """How this process trains: its scope, whether it is the chief, and `fit`."""

    def __init__(self, choice=None, strategy=None):
        self.choice = choice
        self.strategy = strategy
        with self.scope():
            self.cluster = current_cluster()
        self.is_chief = self.cluster.is_chief
        self.replicas = (
            strategy.num_replicas_in_sync if strategy is not None else _replicas()
        )

    def scope(self):
        """Build and compile the model in it."""
        if self.strategy is not None:
            return self.strategy.scope()
        return contextlib.nullcontext()

    def agree(self, failure):
        """Stops every process when one of them stops (`failure`, a
        `SystemExit` or None): a process left alone would wait forever for
        the others. Collective: every process calls it at the same point."""
        ok = self.cluster.all_gather([failure is None], "int64")[:, 0]
        if failure is not None:
            raise failure
        if not ok.all():
            stopped = [i for i, flag in enumerate(ok) if not flag]
            raise SystemExit(
                f"Process(es) {stopped} stopped (their output says why); stopping too."
            )

    @property
    def _sharded(self):
        """Whether `fit` shards the batches over JAX devices: then in tf.data
        global batches, which Keras 3.15 alone shards across processes, and
        whose every batch splits evenly over the devices."""
        return self.choice == "data_parallel" and self.replicas > 1

    def check_batch_size(self, batch_size):
        """Every replica needs a share of each batch: an equal one where the
        engine shards arrays (JAX, DDP), at least one image (TensorFlow)."""
        if self.replicas == 1:
            return
        if self.strategy is not None:
            if batch_size < self.replicas:
                raise Refusal(
                    f"--batch-size {batch_size} is the global batch, shared by "
                    f"{self.replicas} replicas: give each at least one image "
                    f"(--batch-size {self.replicas} or more)."
                )
        elif batch_size % self.replicas:
            raise Refusal(
                f"--batch-size {batch_size} is the global batch, split evenly over "
                f"{self.replicas} replicas: pass a multiple of {self.replicas}."
            )

    def test_data(self, x, y, batch_size):
        """`evaluate`'s data arguments: the arrays, or across JAX processes
        global batches that hold every image when their number allows."""
        if not self._sharded:
            return {"x": x, "y": y, "batch_size": batch_size}
        return {"x": _global_batches(x, y, batch_size, self.replicas)}

    def fit(self, model, x, y, callbacks=(), **kwargs):
        """`model.fit`, or the DDP loop, which averages the BN moving
        statistics itself; under a TensorFlow strategy they are averaged
        over the replicas at each epoch's end, before the other callbacks."""
        if self.choice == "ddp":
            from examples import _ddp

            return _ddp.fit(model, x, y, callbacks=list(callbacks), **kwargs)
        if self._sharded:
            # Keras 3.15 shards only tf.data input across JAX processes: each
            # process then receives its part of every global batch.
            batch_size = kwargs.pop("batch_size")
            x = _global_batches(x, y, batch_size, self.replicas, shuffle=True)
            y, kwargs["shuffle"] = None, False  # the dataset shuffles
            if kwargs.get("validation_data") is not None:
                kwargs["validation_data"] = _global_batches(
                    *kwargs["validation_data"], batch_size, self.replicas
                )
        if self.strategy is not None:
            average = keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: synchronize_batch_statistics(model)
            )
            callbacks = [average, *callbacks]
        return model.fit(x, y, callbacks=list(callbacks), **kwargs)


def _global_batches(x, y, batch_size, replicas, shuffle=False):
    """A `tf.data` dataset of global batches, shuffled each epoch in the same
    order on every process, or not. Every device must get an equal share of
    every batch: without shuffling, the batch is the largest multiple of the
    device count up to `batch_size` that divides the images, so that none is
    left out; else, and when no such batch exists, the last partial batch is
    dropped."""
    import tensorflow as tf

    if not shuffle:
        sizes = range(batch_size - batch_size % replicas, 0, -replicas)
        batch_size = next((b for b in sizes if len(x) % b == 0), batch_size)
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        dataset = dataset.shuffle(len(x), seed=0, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=True)


def check_choice(choice):
    """The --distribute choices of this backend; others get a clear error."""
    backend = keras.config.backend()
    if choice is not None and choice not in CHOICES[backend]:
        others = [b for b, choices in CHOICES.items() if choice in choices]
        raise Refusal(
            f"--distribute {choice} runs on the {others[0]} backend "
            f"(KERAS_BACKEND={others[0]}); this is {backend}, whose choices are "
            f"{', '.join(CHOICES[backend])}."
        )


def start(choice, cpu_devices=None):
    """Sets up the engine; call it first, before the data or the model."""
    check_choice(choice)
    if choice is None:
        if cpu_devices:
            raise Refusal("--cpu-devices needs --distribute.")
        return Engine()
    if choice in ("mirrored", "multi_worker"):
        return Engine(choice, _tf_strategy(choice, cpu_devices))
    if choice == "data_parallel":
        _jax_data_parallel(cpu_devices)
        return Engine(choice)
    if cpu_devices:
        raise Refusal(
            "--cpu-devices does not apply to ddp: start one process per device "
            "with torchrun (--nproc-per-node N)."
        )
    from examples import _ddp

    try:
        _ddp.init_process_group_from_env()
    except ValueError as error:  # not started by torchrun
        raise Refusal(str(error)) from None
    return Engine(choice)


def _tf_strategy(choice, cpu_devices):
    import tensorflow as tf

    if choice == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise Refusal(
                "--distribute multi_worker reads the cluster from TF_CONFIG: "
                'set it on each machine, e.g. TF_CONFIG=\'{"cluster": {"worker": '
                '["host0:2222", "host1:2222"]}, "task": {"type": "worker", '
                '"index": 0}}\'.'
            )
        if cpu_devices:
            raise Refusal(
                "--cpu-devices applies to --distribute mirrored and data_parallel "
                "(one machine); multi_worker takes the devices of each worker."
            )
        from keras_blocks.distribute import MultiWorkerMirroredStrategy

        return MultiWorkerMirroredStrategy()
    devices = None
    if cpu_devices:
        if tf.config.list_physical_devices("GPU"):
            raise Refusal(
                "--cpu-devices is for machines without GPUs; this one has some, "
                "and --distribute mirrored uses them all."
            )
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_devices
        )
        devices = [f"/cpu:{i}" for i in range(cpu_devices)]
    return tf.distribute.MirroredStrategy(devices)


def _jax_data_parallel(cpu_devices):
    import jax

    if cpu_devices:
        jax.config.update("jax_num_cpu_devices", cpu_devices)
    if "KERAS_DISTRIBUTION_JOB_ADDRESSES" in os.environ:
        keras.distribution.initialize()
    keras.distribution.set_distribution(keras.distribution.DataParallel())


def _replicas():
    if keras.config.backend() == "jax":
        import jax

        return jax.device_count()
    return current_cluster().process_count
