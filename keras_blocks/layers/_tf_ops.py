"""Our convolutions on the TensorFlow backend, where Keras' own do not do.

## `channels_first` on the CPU

TensorFlow's CPU kernels implement NHWC convolutions only, so Keras'
`Conv2D(data_format="channels_first")` fails there while its pooling and
depthwise layers transpose around the kernel. `conv2d` does the same for the
convolution. The kernel layout (height, width, in, out) is the same for both
data formats, so the weights are interchangeable.

## Grouped convolutions, without XLA

Keras runs a grouped `Conv2D` (`groups > 1`) inside a nested XLA-compiled
function, which `model.export(format="onnx")` (tf2onnx) leaves as a call that
ONNX Runtime refuses ("INVALID_GRAPH"), and whose gradient on the CPU took
4 s where a plain one takes 9 ms (ResNeXt's 3x3, 32 groups, batch 8 at
28x28). `conv2d` emits one grouped convolution where TensorFlow runs one (a
GPU; oneDNN's float32 CPU kernels, see `runs_grouped`), exported as one ONNX
`Conv` with `group` and one LiteRT `CONV_2D`; elsewhere one convolution per
group on its slice of the channels, concatenated (the same sums). The graph
holds no XLA call either way. An exporter can force either route (see
`_conv.convolutions_for_export`).

## Where the convolution runs

Decided at each call (`runs_on_cpu`). One case is beyond it: inside a
compiled function (`fit`, `predict`) traced under `tf.device("/CPU:0")` on a
machine with a GPU, nothing at trace time says the function will run on the
CPU, and a `channels_first` convolution fails there as Keras' own `Conv2D`
does.
"""

import functools

import tensorflow as tf
from keras import ops

from keras_blocks import _compat

GROUPED_ROUTES = ("grouped", "per_group")


@functools.cache
def _sees_a_gpu():
    return bool(tf.config.list_logical_devices("GPU"))


def runs_on_cpu():
    """Whether a convolution called now will run on TensorFlow's CPU kernels.

    Decided per call. Run eagerly, an op goes where the current device scope
    (or TensorFlow's default) puts it, which a scalar op created here shows:
    a call under `tf.device("/CPU:0")` on a machine with a GPU takes the CPU
    path. Traced into a function, ops do not know where the function will
    run; there the convolution is taken to run on the CPU when TensorFlow
    sees no GPU, where its placer puts it unless told otherwise.
    """
    if tf.executing_eagerly():
        return ":GPU:" not in tf.zeros(()).device.upper()
    return not _sees_a_gpu()


def runs_grouped(dtype, on_cpu):
    """Whether one grouped TensorFlow convolution runs (forward and gradients).

    cuDNN runs them on a GPU. On the CPU only oneDNN's float32 kernels do:
    Eigen's refuse the gradients ("Gradients for grouped convolutions are not
    supported on CPU") and a fused convolution ("Fused conv implementation
    does not support grouped convolutions"), and oneDNN runs float16 on
    AVX-512 machines only (checked with TensorFlow 2.21).
    """
    return not on_cpu or (_compat.is_onednn_enabled() and dtype == "float32")


def conv2d(layer, inputs, kernel, grouped_route=None):
    """`layer`'s convolution (a `Conv2D`'s `convolution_op`) where Keras' own
    fails or takes XLA: `channels_first` on the CPU, and grouped convolutions.
    NotImplementedError elsewhere, where Keras' own runs as it is.

    `grouped_route`: `"grouped"` or `"per_group"` (see `GROUPED_ROUTES`)
    for a grouped convolution; None lets `runs_grouped` choose.
    """
    if layer.groups == 1 and layer.data_format == "channels_last":
        raise NotImplementedError
    on_cpu = runs_on_cpu()
    if layer.data_format == "channels_last" or not on_cpu:
        if layer.groups == 1:
            raise NotImplementedError
        return _convolution(
            layer, inputs, kernel, layer.data_format, on_cpu, grouped_route
        )
    outputs = _convolution(
        layer,
        ops.transpose(inputs, (0, 2, 3, 1)),  # (batch, h, w, c)
        kernel,
        "channels_last",
        on_cpu,
        grouped_route,
    )
    return ops.transpose(outputs, (0, 3, 1, 2))  # (batch, c, h, w)


def _convolution(layer, inputs, kernel, data_format, on_cpu, grouped_route):
    if layer.groups == 1:
        return ops.conv(
            inputs,
            kernel,
            strides=layer.strides,
            padding=layer.padding,
            dilation_rate=layer.dilation_rate,
            data_format=data_format,
        )

    def convolution(x, k):
        return tf.nn.convolution(
            x,
            k,
            strides=layer.strides,
            padding=layer.padding.upper(),
            data_format="NHWC" if data_format == "channels_last" else "NCHW",
            dilations=layer.dilation_rate,
        )

    route = grouped_route
    if route is None:
        route = "grouped" if runs_grouped(inputs.dtype.name, on_cpu) else "per_group"
    if route == "grouped":
        return convolution(inputs, kernel)
    channel_axis = -1 if data_format == "channels_last" else 1
    pieces = zip(
        tf.split(inputs, layer.groups, axis=channel_axis),
        tf.split(kernel, layer.groups, axis=-1),
        strict=True,
    )
    return tf.concat([convolution(x, k) for x, k in pieces], channel_axis)


def bias_add(outputs, bias, data_format):
    """`outputs` plus `bias` as one BiasAdd, which TensorFlow's graph
    optimizer fuses into the convolution (and a ReLU after it) on the CPU."""
    return tf.nn.bias_add(
        outputs,
        bias,
        data_format="NHWC" if data_format == "channels_last" else "NCHW",
    )
