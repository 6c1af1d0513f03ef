"""Dropout whose masks differ from replica to replica."""

from typing import Any

import keras

from keras_blocks import _validation as check
from keras_blocks.distribute.replica_seed import ReplicaSeed
from keras_blocks.layers._float_inputs import float_inputs


@keras.saving.register_keras_serializable(package="keras_blocks")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` that draws its own mask on each replica.

    Under a `tf.distribute` strategy every replica runs the same step with the
    same generator state, and under PyTorch DDP every rank starts from rank
    0's, so Keras' `Dropout` drops the same units of every replica's share of
    the batch: with 8 replicas, 8 copies of one mask. This layer adds the
    replica's index to the seed (as `DropPath` does), so each replica draws
    its own mask and a seed still makes a run reproducible. On one device,
    and under JAX's `keras.distribution` (one program over the global batch),
    it is Keras' layer, draw for draw. The classifier heads of the reference
    models use it.

    Reference: Srivastava et al., "Dropout: A Simple Way to Prevent Neural
    Networks from Overfitting", JMLR 2014.

    Args:
        rate: float. Fraction of the input units to drop, in [0, 1].
        noise_shape: tuple of int or None, or None. Shape of the binary mask
            multiplied with the input (`(batch, 1, features)` for the same
            mask at every timestep), as Keras' `Dropout` takes it.
        seed: int or None. Seed of the layer's random generator.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: tensor of any rank.
        training: bool. Drop only when True.

    Input shape:
        Any shape.

    Output shape:
        Same as the input.

    Raises:
        ValueError: if `rate` is not in [0, 1], `seed` is not a non-negative
            integer, or `noise_shape` is invalid (Keras' check).

    Examples:
        >>> import numpy as np
        >>> import keras
        >>> import keras_blocks
        >>> x = np.ones((4, 1000), dtype="float32")
        >>> ours = keras_blocks.layers.Dropout(0.5, seed=3)
        >>> theirs = keras.layers.Dropout(0.5, seed=3)
        >>> a = keras.ops.convert_to_numpy(ours(x, training=True))
        >>> b = keras.ops.convert_to_numpy(theirs(x, training=True))
        >>> bool((a == b).all())  # one device: Keras' draws
        True
    """

    def __init__(
        self,
        rate: float,
        noise_shape: tuple[int | None, ...] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ):
        # Keras' own check lets None and strings through to a TypeError.
        super().__init__(
            check.probability("rate", rate),
            noise_shape=noise_shape,
            seed=check.optional(check.non_negative_int, "seed", seed),
            **kwargs,
        )

    def call(self, inputs, training=False):
        inputs = float_inputs(self, inputs)
        if training and self.rate > 0:
            return keras.random.dropout(
                inputs,
                self.rate,
                noise_shape=self.noise_shape,
                seed=ReplicaSeed(self.seed_generator),
            )
        return inputs
