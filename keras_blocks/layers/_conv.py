"""The convolution every block uses, and the shape arithmetic they share."""

import functools

import keras
from keras import ops


@functools.cache
def _tensorflow_cpu_only():
    if keras.config.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.config.list_logical_devices("GPU")


class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` that also runs `channels_first` on TensorFlow's CPU.

    TensorFlow's CPU kernels implement NHWC convolutions only, so Keras'
    `Conv2D(data_format="channels_first")` fails there while its pooling and
    depthwise layers transpose around the kernel. This class does the same for
    the convolution; elsewhere it is `keras.layers.Conv2D` unchanged. The kernel
    layout (height, width, in, out) is the same for both data formats, so the
    weights are interchangeable.
    """

    def convolution_op(self, inputs, kernel):
        if self.data_format == "channels_last" or not _tensorflow_cpu_only():
            return super().convolution_op(inputs, kernel)
        outputs = ops.conv(
            ops.transpose(inputs, (0, 2, 3, 1)),  # (batch, h, w, c)
            kernel,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format="channels_last",
        )
        return ops.transpose(outputs, (0, 3, 1, 2))  # (batch, c, h, w)


def strided_size(size, strides):
    """Spatial size after a 'same' or symmetric-padded strided operation."""
    return None if size is None else -(-size // strides)


def spatial_shape(input_shape, data_format):
    """(height, width) of a 4D shape."""
    if data_format == "channels_last":
        return tuple(input_shape[1:3])
    return tuple(input_shape[2:4])


def image_shape(batch, height, width, channels, data_format):
    """A 4D shape laid out according to `data_format`."""
    if data_format == "channels_last":
        return (batch, height, width, channels)
    return (batch, channels, height, width)
