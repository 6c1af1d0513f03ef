"""Stochastic depth: drop a whole residual branch per sample."""

from typing import Any

import keras
from keras import ops

from keras_blocks import _validation as check
from keras_blocks.distribute.replica_seed import ReplicaSeed
from keras_blocks.layers._float_inputs import float_inputs


@keras.saving.register_keras_serializable(package="keras_blocks")
class DropPath(keras.layers.Layer):
    """Per-sample stochastic depth ("drop path").

    During training, each sample's input is zeroed with probability `rate` and
    the survivors are scaled by `1 / (1 - rate)`, so the expected value is
    unchanged. At inference the layer is the identity. Placed on a residual
    branch just before the addition, it drops the whole branch for that sample
    and the block reduces to its shortcut.

    Under a distribution strategy (`tf.distribute`, PyTorch DDP), each
    replica draws its own masks: the replica's index is added to the seed
    (see `keras_blocks.distribute.replica_seed`), so a seed still makes a run
    reproducible, and no two replicas drop the same samples of their shares.

    Reference: Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016.

    Args:
        rate: float. Probability of dropping a sample, in [0, 1).
        seed: int or None. Seed of the layer's random generator.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: tensor of any rank >= 1; the first axis is the batch.
        training: bool. Drop only when True.

    Input shape:
        Any shape `(batch, ...)`.

    Output shape:
        Same as the input.

    Raises:
        ValueError: if `rate` is not in [0, 1), `seed` is not a non-negative
            integer, or the input is a scalar.

    Examples:
        >>> import numpy as np
        >>> import keras
        >>> import keras_blocks
        >>> drop = keras_blocks.layers.DropPath(0.5, seed=1)
        >>> x = np.ones((1000, 4), dtype="float32")
        >>> bool((keras.ops.convert_to_numpy(drop(x)) == x).all())
        True
        >>> kept = keras.ops.convert_to_numpy(drop(x, training=True))[:, 0]
        >>> sorted(set(kept.tolist()))
        [0.0, 2.0]
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.rate = check.rate("rate", rate)
        self.seed = check.optional(check.non_negative_int, "seed", seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def build(self, input_shape):
        if len(input_shape) < 1:
            raise ValueError(
                f"Invalid input shape for layer '{self.name}' (DropPath). "
                "Expected a tensor with a batch axis. "
                f"Received: input_shape={input_shape}"
            )

    def call(self, inputs, training=None):
        inputs = float_inputs(self, inputs)
        if not training or self.rate == 0:
            return inputs
        # One draw per sample, broadcast over every other axis.
        noise_shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        return keras.random.dropout(
            inputs,
            self.rate,
            noise_shape=noise_shape,
            seed=ReplicaSeed(self.seed_generator),  # other masks on each replica
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
