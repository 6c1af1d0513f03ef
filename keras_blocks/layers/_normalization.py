"""Input normalization that `set_weights` can change."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_blocks")
class Normalization(keras.layers.Normalization):
    """`keras.layers.Normalization` that reads its statistics at every call.

    Keras' layer copies its mean and variance variables into constants when it
    is built, adapted or loaded from a file, so assigning the variables (which
    is what `Model.set_weights` does) silently leaves its output unchanged.
    The models built here hold the same three weights (mean, variance, count)
    in the same place as `keras.applications`' EfficientNet, and a weight
    transfer must reach them.
    """

    def call(self, inputs):
        if self.input_mean is not None or self.invert:
            return super().call(inputs)
        mean = ops.reshape(self.adapt_mean, self._broadcast_shape)
        variance = ops.reshape(self.adapt_variance, self._broadcast_shape)
        x = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        scale = ops.maximum(ops.sqrt(variance), keras.config.epsilon())
        return (x - ops.cast(mean, x.dtype)) / ops.cast(scale, x.dtype)
