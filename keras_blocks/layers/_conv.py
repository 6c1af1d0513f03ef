"""The convolution every block uses, and the shape arithmetic they share."""

import contextlib
import contextvars
import functools

import keras
from keras import ops

from keras_blocks import _validation as check
from keras_blocks._initializers import for_sublayer


@functools.cache
def _tensorflow_sees_a_gpu():
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def _runs_on_tensorflow_cpu():
    """Whether a convolution called now will run on TensorFlow's CPU kernels.

    Decided per call. Run eagerly, an op goes where the current device scope
    (or TensorFlow's default) puts it, which a scalar op created here shows:
    a call under `tf.device("/CPU:0")` on a machine with a GPU takes the CPU
    path. Traced into a function, ops do not know where the function will
    run; there the convolution is taken to run on the CPU when TensorFlow
    sees no GPU, where its placer puts it unless told otherwise.
    """
    if keras.config.backend() != "tensorflow":
        return False
    import tensorflow as tf

    if tf.executing_eagerly():
        return ":GPU:" not in tf.zeros(()).device.upper()
    return not _tensorflow_sees_a_gpu()


@functools.cache
def _tensorflow_uses_onednn():
    """Whether TensorFlow's CPU kernels are oneDNN's (x86-64 Linux builds by
    default; `TF_ENABLE_ONEDNN_OPTS=0` turns them off)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


GROUPED_ROUTES = ("grouped", "per_group")
_grouped_route = contextvars.ContextVar("grouped_convolution_route", default=None)


@contextlib.contextmanager
def grouped_convolution_route(route):
    """Within it, grouped TensorFlow convolutions traced take `route`.

    `"grouped"`: one grouped convolution (one ONNX `Conv` with `group`);
    `"per_group"`: one convolution per group, which every TensorFlow build and
    every LiteRT delegate runs. `keras_blocks.deploy.export_model` traces
    under it, so that a file does not depend on the kernels of the machine
    that exported it: a SavedModel with one grouped convolution, exported
    where oneDNN runs it, failed on a TensorFlow without oneDNN ("Fused conv
    implementation does not support grouped convolutions").
    """
    if route not in GROUPED_ROUTES:
        raise ValueError(f"route must be one of {GROUPED_ROUTES}, not {route!r}")
    token = _grouped_route.set(route)
    try:
        yield
    finally:
        _grouped_route.reset(token)


def _tensorflow_runs_grouped(dtype, on_cpu):
    """Whether one grouped TensorFlow convolution runs (forward and gradients).

    cuDNN runs them on a GPU. On the CPU only oneDNN's float32 kernels do:
    Eigen's refuse the gradients ("Gradients for grouped convolutions are not
    supported on CPU") and a fused convolution ("Fused conv implementation
    does not support grouped convolutions"), and oneDNN runs float16 on
    AVX-512 machines only (checked with TensorFlow 2.21).
    """
    return not on_cpu or (_tensorflow_uses_onednn() and dtype == "float32")


class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` that runs everywhere on TensorFlow and exports.

    The same layer, weights and numerics as Keras' `Conv2D`; on TensorFlow,
    two cases take another route to the same result:

    - `channels_first` on TensorFlow's CPU: its CPU kernels implement NHWC
      convolutions only, so Keras' `Conv2D(data_format="channels_first")`
      fails there while its pooling and depthwise layers transpose around the
      kernel. This class does the same for the convolution. The kernel layout
      (height, width, in, out) is the same for both data formats, so the
      weights are interchangeable.
    - Grouped convolutions (`groups > 1`): Keras runs them inside a nested
      XLA-compiled function, which `model.export(format="onnx")` (tf2onnx)
      leaves as a call that ONNX Runtime refuses ("INVALID_GRAPH"), and whose
      gradient on the CPU took 4 s where a plain one takes 9 ms (ResNeXt's
      3x3, 32 groups, batch 8 at 28x28). This class emits one grouped
      convolution where TensorFlow runs one (a GPU; oneDNN's float32 CPU
      kernels), exported as one ONNX `Conv` with `group` and one LiteRT
      `CONV_2D`; elsewhere one convolution per group on its slice of the
      channels, concatenated (the same sums). The graph holds no XLA call
      either way.

    Where the convolution runs is decided at each call (see
    `_runs_on_tensorflow_cpu`). One case is beyond it: inside a compiled
    function (`fit`, `predict`) traced under `tf.device("/CPU:0")` on a
    machine with a GPU, nothing at trace time says the function will run on
    the CPU, and a `channels_first` convolution fails there as Keras' own
    `Conv2D` does. Use `channels_last` on the CPU, or hide the GPUs from
    TensorFlow (`tf.config.set_visible_devices([], "GPU")`) in that process.
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
        return (self._kernel, self.bias) if self.use_bias else (self._kernel,)

    def convolution_op(self, inputs, kernel):
        if keras.config.backend() != "tensorflow":
            return super().convolution_op(inputs, kernel)
        on_cpu = _runs_on_tensorflow_cpu()
        if self.data_format == "channels_last" or not on_cpu:
            return self._tensorflow_convolution(
                inputs, kernel, self.data_format, on_cpu
            )
        outputs = self._tensorflow_convolution(
            ops.transpose(inputs, (0, 2, 3, 1)),  # (batch, h, w, c)
            kernel,
            "channels_last",
            on_cpu,
        )
        return ops.transpose(outputs, (0, 3, 1, 2))  # (batch, c, h, w)

    def _tensorflow_convolution(self, inputs, kernel, data_format, on_cpu):
        if self.groups == 1:
            return ops.conv(
                inputs,
                kernel,
                strides=self.strides,
                padding=self.padding,
                dilation_rate=self.dilation_rate,
                data_format=data_format,
            )
        import tensorflow as tf

        def convolution(x, k):
            return tf.nn.convolution(
                x,
                k,
                strides=self.strides,
                padding=self.padding.upper(),
                data_format="NHWC" if data_format == "channels_last" else "NCHW",
                dilations=self.dilation_rate,
            )

        route = _grouped_route.get()
        if route is None:
            route = (
                "grouped"
                if _tensorflow_runs_grouped(inputs.dtype.name, on_cpu)
                else "per_group"
            )
        if route == "grouped":
            return convolution(inputs, kernel)
        channel_axis = -1 if data_format == "channels_last" else 1
        pieces = zip(
            tf.split(inputs, self.groups, axis=channel_axis),
            tf.split(kernel, self.groups, axis=-1),
            strict=True,
        )
        return tf.concat([convolution(x, k) for x, k in pieces], channel_axis)


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
        import tensorflow as tf

        # A BiasAdd, which TensorFlow's graph optimizer fuses into the
        # convolution (and a ReLU after it) on the CPU.
        return tf.nn.bias_add(
            outputs,
            bias,
            data_format="NHWC" if layer.data_format == "channels_last" else "NCHW",
        )
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
