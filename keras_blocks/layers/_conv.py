"""The convolution every block uses, and the shape arithmetic they share.

The convolutions choose their route here; each backend's own lives beside
them (`_tf_ops`, `_torch_ops`), and where it has none, Keras' runs.
"""

import contextlib
import contextvars

import keras
from keras import ops

from keras_blocks import _validation as check
from keras_blocks._initializers import for_sublayer

# Within `convolutions_for_export`: the route every grouped TensorFlow
# convolution traced takes (see `_tf_ops.GROUPED_ROUTES`); None lets
# `_tf_ops.runs_grouped` choose per call.
_grouped_route = contextvars.ContextVar("grouped_convolution_route", default=None)


@contextlib.contextmanager
def convolutions_for_export(format):
    """The hook `keras_blocks.deploy.export_model` traces a model under, so
    that the file of `format` does not depend on the kernels of the machine
    that exported it.

    Grouped TensorFlow convolutions traced within it take one route: one
    grouped convolution for `"onnx"` (one ONNX `Conv` with `group`, which
    every runtime runs), one convolution per group for a SavedModel or a
    LiteRT file, which every TensorFlow build and every LiteRT delegate runs.
    A SavedModel with one grouped convolution, exported where oneDNN runs it,
    failed on a TensorFlow without oneDNN ("Fused conv implementation does
    not support grouped convolutions").
    """
    token = _grouped_route.set("grouped" if format == "onnx" else "per_group")
    try:
        yield
    finally:
        _grouped_route.reset(token)


class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` that runs everywhere on TensorFlow and exports.

    The same layer, weights and numerics as Keras' `Conv2D`; on TensorFlow,
    two cases take another route to the same result (`_tf_ops.conv2d`):

    - `channels_first` on TensorFlow's CPU, whose kernels implement NHWC
      convolutions only: the input is transposed around the convolution, as
      Keras' pooling and depthwise layers do.
    - Grouped convolutions (`groups > 1`), which Keras runs inside a nested
      XLA-compiled function that ONNX exports refuse and whose CPU gradient
      is slow: one grouped convolution where TensorFlow runs one, elsewhere
      one convolution per group (the same sums).

    Where the convolution runs is decided at each call. Inside a compiled
    function traced under `tf.device("/CPU:0")` on a machine with a GPU, a
    `channels_first` convolution fails as Keras' own `Conv2D` does: use
    `channels_last` on the CPU, or hide the GPUs from TensorFlow
    (`tf.config.set_visible_devices([], "GPU")`) in that process.
    On PyTorch, one `conv2d` without Keras' per-call transposes (see
    `_torch_ops`).
    """

    def call(self, inputs):
        return self.convolve(inputs, self._weights, self._sources())

    def convolve(self, inputs, weights, sources):
        """The convolution of `inputs` by `weights()`, a `(kernel, bias)`
        pair in this layer's layout (bias None for none): `call`'s, with
        other weights (`_conv_bn` folds a batch normalization into them).

        `sources`: what `weights()` is computed from (variables, and other
        values it reads), or None. On PyTorch, inference keeps its result
        while they are unchanged (see `_torch_ops`).
        """
        outputs = _convolve(self, inputs, weights, sources, depthwise=False)
        return outputs if self.activation is None else self.activation(outputs)

    def _weights(self):
        return self.kernel, self.bias if self.use_bias else None

    def _sources(self):
        """The variables of `_weights`, or None where LoRA adds its own."""
        if self.lora_enabled:
            return None
        # Without LoRA, `kernel` is the kernel variable itself.
        return (self.kernel, self.bias) if self.use_bias else (self.kernel,)

    def convolution_op(self, inputs, kernel):
        if keras.config.backend() == "tensorflow":
            from keras_blocks.layers import _tf_ops

            try:
                return _tf_ops.conv2d(self, inputs, kernel, _grouped_route.get())
            except NotImplementedError:
                pass  # Keras' own convolution runs this one
        return super().convolution_op(inputs, kernel)


class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` with `Conv2D`'s `convolve`.

    The same layer, weights and numerics; on PyTorch, one grouped `conv2d`
    without Keras' per-call transposes (see `_torch_ops`).
    """

    def call(self, inputs):
        return self.convolve(inputs, self._weights, self._sources())

    def convolve(self, inputs, weights, sources):
        """As `Conv2D.convolve`, with a `(h, w, in, multiplier)` kernel."""
        outputs = _convolve(self, inputs, weights, sources, depthwise=True)
        return outputs if self.activation is None else self.activation(outputs)

    def _weights(self):
        return self.kernel, self.bias if self.use_bias else None

    def _sources(self):
        return (self.kernel, self.bias) if self.use_bias else (self.kernel,)

    def convolution_op(self, inputs, kernel):
        return ops.depthwise_conv(
            inputs,
            kernel,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )


def _convolve(layer, inputs, weights, sources, depthwise):
    """`layer`'s convolution of `inputs` by `weights()`, bias added."""
    if keras.config.backend() == "torch":
        from keras_blocks.layers import _torch_ops

        return _torch_ops.convolve(layer, inputs, weights, sources, depthwise)
    kernel, bias = weights()
    outputs = layer.convolution_op(inputs, kernel)
    if bias is None:
        return outputs
    if keras.config.backend() == "tensorflow":
        from keras_blocks.layers import _tf_ops

        return _tf_ops.bias_add(outputs, bias, layer.data_format)
    shape = (1, 1, 1, -1) if layer.data_format == "channels_last" else (1, -1, 1, 1)
    return ops.add(outputs, ops.reshape(bias, shape))


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


def strided_output_shape(input_shape, strides, channels, data_format):
    """Output shape of a block whose strided convolutions pad like "same"."""
    height, width = spatial_shape(input_shape, data_format)
    return image_shape(
        input_shape[0],
        strided_size(height, strides),
        strided_size(width, strides),
        channels,
        data_format,
    )


def set_unit_options(
    layer,
    *,
    use_bias,
    activation,
    bn_momentum,
    bn_epsilon,
    bn_synchronized,
    kernel_initializer,
    kernel_regularizer,
    data_format,
):
    """Validates the options of convolution units and stores them on `layer`.

    `ConvBNAct` and every block made of it take these same arguments; a block
    passes them on to its units with `**unit_options(layer)`.
    """
    layer.use_bias = check.optional(check.boolean, "use_bias", use_bias)
    layer.activation = check.activation("activation", activation)
    layer.bn_momentum = check.rate("bn_momentum", bn_momentum)
    layer.bn_epsilon = check.positive_float("bn_epsilon", bn_epsilon)
    layer.bn_synchronized = check.boolean("bn_synchronized", bn_synchronized)
    layer.kernel_initializer = check.initializer(
        "kernel_initializer", kernel_initializer
    )
    layer.kernel_regularizer = check.regularizer(
        "kernel_regularizer", kernel_regularizer
    )
    layer.data_format = check.data_format(data_format)


def batch_normalization(layer, name, gamma_initializer="ones"):
    """A `BatchNormalization` configured from `layer`'s stored unit options."""
    return keras.layers.BatchNormalization(
        axis=check.channel_axis(layer.data_format),
        momentum=layer.bn_momentum,
        epsilon=layer.bn_epsilon,
        # Keras synchronizes on TensorFlow only, and refuses the flag elsewhere.
        synchronized=layer.bn_synchronized and keras.config.backend() == "tensorflow",
        gamma_initializer=gamma_initializer,
        dtype=layer.dtype_policy,
        name=name,
    )


def unit_options(layer, name):
    """The stored unit options, as keyword arguments for the `ConvBNAct` `name`.

    The unit gets an initializer of its own (see `for_sublayer`).
    """
    return {
        **_stored_unit_options(layer),
        "kernel_initializer": for_sublayer(layer.kernel_initializer, name),
    }


def _stored_unit_options(layer):
    return {
        "use_bias": layer.use_bias,
        "activation": layer.activation,
        "bn_momentum": layer.bn_momentum,
        "bn_epsilon": layer.bn_epsilon,
        "bn_synchronized": layer.bn_synchronized,
        "kernel_initializer": layer.kernel_initializer,
        "kernel_regularizer": layer.kernel_regularizer,
        "data_format": layer.data_format,
    }


def unit_options_config(layer):
    """The stored unit options, serialized for `get_config()`."""
    return {
        **_stored_unit_options(layer),
        "activation": check.serialize_activation(layer.activation),
        "kernel_initializer": keras.initializers.serialize(layer.kernel_initializer),
        "kernel_regularizer": keras.regularizers.serialize(layer.kernel_regularizer),
    }
