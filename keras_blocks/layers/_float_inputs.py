"""Integer and boolean images, computed on as the same values in floats."""

import keras
from keras import ops


def float_inputs(layer, inputs):
    """`inputs` cast to `layer.compute_dtype` where they are not floats.

    Keras casts float inputs to a layer's compute dtype (autocast) and leaves
    integers alone, so decoded images (uint8) reached the kernels as they
    are: TensorFlow has no uint8 convolution (`InvalidArgumentError`),
    PyTorch refused to mix them with float weights, JAX promoted them, and
    dropout refused them in training only. Keras' own `Dense`,
    `BatchNormalization` and image preprocessing layers compute on them as
    floats on every backend; every image layer here does the same, at the
    start of `call` (where a symbolic call sees it too). Floats are left to
    Keras' autocast.
    """
    if keras.backend.is_float_dtype(inputs.dtype):
        return inputs
    return ops.cast(inputs, layer.compute_dtype)
