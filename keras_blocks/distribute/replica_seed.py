"""Random draws that differ from replica to replica, reproducibly."""

import keras
from keras import ops

# Spreads the replicas' seeds apart: replica r of seed s draws with s + r * SPREAD.
SPREAD = 1_000_003


def replica_index():
    """The index of the replica that runs this call: 0 where there is one.

    TensorFlow: the replica of a `tf.distribute` strategy's step (global over
    the workers of `MultiWorkerMirroredStrategy`). PyTorch: the rank of the
    `torch.distributed` group. JAX: 0, since `keras.distribution` runs one
    program on the global batch, whose random draws differ from sample to
    sample already. The result may be a tensor (TensorFlow, in a traced step).
    """
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            return context.replica_id_in_sync_group
    elif backend == "torch":
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank()
    return 0


class ReplicaSeed(keras.random.SeedGenerator):
    """The seeds of `generator`, made different on each replica.

    Under `tf.distribute` every replica runs the same step with the same
    generator state, and under PyTorch DDP every rank starts from the same
    seed, so a layer drawing from its generator would draw the same masks on
    every replica: each replica's share of the batch would repeat the same
    dropout pattern. This draws the generator's next seed, as the layer would,
    and adds the replica's index to it, so a seed still gives one sequence of
    draws per replica. It holds no state: the generator keeps it, and saves it.

    Args:
        generator: `keras.random.SeedGenerator`.

    Examples:
        >>> import keras
        >>> generator = keras.random.SeedGenerator(1)
        >>> x = keras.random.uniform((2,), seed=ReplicaSeed(generator))
        >>> tuple(x.shape)
        (2,)
    """

    def __init__(self, generator):
        # No `super().__init__()`: that would create a state variable.
        self.generator = generator
        self.name = generator.name
        self.backend = generator.backend
        # Keras' PyTorch dropout reads it: an unseeded generator takes
        # torch's own dropout kernel.
        self._initial_seed = generator._initial_seed

    @property
    def state(self):
        return self.generator.state

    def next(self, ordered=True):
        seed = self.generator.next(ordered=ordered)
        replica = replica_index()
        if isinstance(replica, int) and replica == 0:
            return seed
        offset = ops.cast(replica, seed.dtype) * ops.cast(SPREAD, seed.dtype)
        return seed + ops.stack([offset, ops.zeros_like(offset)])
