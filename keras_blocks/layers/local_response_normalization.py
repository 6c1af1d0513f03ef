"""AlexNet's cross-channel Local Response Normalization."""

from typing import Any

import keras
import numpy as np
from keras import ops

from keras_blocks import _validation as check
from keras_blocks.layers._float_inputs import float_inputs

# Up to this many channels (channels_last), the window sums are one matrix
# product with a band matrix; above, shifted sums. The product does c times
# the work but is one pass; which is faster depends on the backend. Measured
# on 2 CPU cores, forward + backward, batch 16 at 27x27 (benchmarks/run.py):
# - TensorFlow: the gradient of the shifted sums (pads of slices) is slow, so
#   the product wins up to 1024 channels (backward 0.61x the sums at 1024) and
#   loses at 2048 (forward 2.3x);
# - JAX: XLA fuses the shifted sums forward (2-9x faster), but their gradient
#   is 2-3x slower up to 192 channels; about even at 256;
# - PyTorch: the sums are as fast or faster at every size from 96 up.
BAND_MATMUL_MAX_CHANNELS = {"tensorflow": 1024, "jax": 192, "torch": 0}


@keras.saving.register_keras_serializable(package="keras_blocks")
class LocalResponseNormalization(keras.layers.Layer):
    """Local Response Normalization across channels, as in AlexNet.

    Each activation is divided by a power of the sum of squares of its
    neighbours along the channel axis:

        sqr_sum[..., c] = sum(x[..., c - depth_radius : c + depth_radius + 1] ** 2)
        output = x / (bias + alpha * sqr_sum) ** beta

    with channels outside the tensor counting as zero. The arguments mean
    exactly what they mean in `tf.nn.local_response_normalization` (the paper's
    `n = 2 * depth_radius + 1`, `k = bias`; `alpha` is not divided by `n`), and
    the defaults are the paper's (`n = 5, k = 2, alpha = 1e-4, beta = 0.75`).
    Written with `keras.ops`, so it runs on every backend and both data formats.
    Under a float16 or bfloat16 policy the sum of squares is accumulated in
    float32, since squares of float16 activations overflow above 256.

    Reference: Krizhevsky et al., "ImageNet Classification with Deep
    Convolutional Neural Networks", NeurIPS 2012, section 3.3.

    The layer has no weights.

    Args:
        depth_radius: int. Half-width of the channel window, >= 0.
        bias: float. Additive constant `k`, > 0.
        alpha: float. Scale of the sum of squares, >= 0.
        beta: float. Exponent, >= 0.
        data_format: str or None. `"channels_last"` or `"channels_first"`;
            `None` uses `keras.config.image_data_format()`.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: 4D tensor.

    Input shape:
        4D tensor `(batch, height, width, channels)` (channels last) or
        `(batch, channels, height, width)` (channels first).

    Output shape:
        Same as the input.

    Raises:
        ValueError: on an invalid argument, or when building on an input that
            is not 4D or has unknown channels.

    Examples:
        >>> import numpy as np
        >>> import keras
        >>> import keras_blocks
        >>> lrn = keras_blocks.layers.LocalResponseNormalization(
        ...     depth_radius=1, bias=1.0, alpha=1.0, beta=1.0
        ... )
        >>> x = np.array([[[[1.0, 2.0, 0.0]]]], dtype="float32")
        >>> y = keras.ops.convert_to_numpy(lrn(x)).astype("float64")
        >>> y.round(4).tolist()  # 1/(1+5), 2/(1+5), 0
        [[[[0.1667, 0.3333, 0.0]]]]
    """

    def __init__(
        self,
        depth_radius: int = 2,
        bias: float = 2.0,
        alpha: float = 1e-4,
        beta: float = 0.75,
        data_format: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.depth_radius = check.non_negative_int("depth_radius", depth_radius)
        self.bias = check.positive_float("bias", bias)
        self.alpha = check.non_negative_float("alpha", alpha)
        self.beta = check.non_negative_float("beta", beta)
        self.data_format = check.data_format(data_format)

    def build(self, input_shape):
        channels = check.image_channels(self, input_shape, self.data_format)
        self.input_spec = check.image_input_spec(channels, self.data_format)

    def call(self, inputs):
        inputs = float_inputs(self, inputs)
        axis = 3 if self.data_format == "channels_last" else 1
        channels = inputs.shape[axis]
        x = inputs
        if self.compute_dtype in ("float16", "bfloat16"):
            x = ops.cast(x, "float32")
        squared = ops.square(x)
        r = self.depth_radius
        band_max = BAND_MATMUL_MAX_CHANNELS.get(keras.config.backend(), 0)
        if r and axis == 3 and channels <= band_max:
            # One matrix product with a band of ones (c, c): one pass, where
            # the shifted sums below take 2r + 1 (TensorFlow's kernel does it
            # this way); its cost grows with c ** 2.
            index = np.arange(channels)
            band = (np.abs(index[:, None] - index[None, :]) <= r).astype("float32")
            window_sum = ops.matmul(squared, band)
        elif r:
            # Zero-pad the channel axis, then add the 2r + 1 shifted windows.
            padding = [(0, 0)] * 4
            padding[axis] = (r, r)
            padded = ops.pad(squared, padding)
            index = [slice(None)] * 4
            window_sum = 0
            for shift in range(2 * r + 1):
                index[axis] = slice(shift, shift + channels)
                window_sum = window_sum + padded[tuple(index)]
        else:
            window_sum = squared
        outputs = x * _negative_power(self.bias + self.alpha * window_sum, self.beta)
        return ops.cast(outputs, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "depth_radius": self.depth_radius,
            "bias": self.bias,
            "alpha": self.alpha,
            "beta": self.beta,
            "data_format": self.data_format,
        }


def _negative_power(base, beta):
    """`base ** -beta`, with square roots for the common exponents: `power`
    is an exp and a log per element, three times the cost of the rest."""
    if beta == 0.75:  # AlexNet's
        inverse_root = ops.rsqrt(base)
        return inverse_root * ops.sqrt(inverse_root)
    if beta == 0.5:
        return ops.rsqrt(base)
    if beta == 1.0:
        return 1.0 / base
    return ops.power(base, -beta)
