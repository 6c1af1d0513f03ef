"""Batch normalization after a convolution, in as few passes as it takes.

Every block here is made of a convolution followed by a
`keras.layers.BatchNormalization`. Calling the two layers in turn costs, on
top of the convolution, Keras' normalization: a full pass over the
convolution's output to subtract the mean, one to multiply, one to add the
offset (PyTorch backend; the others fuse some of them), with the
per-channel factors recomputed from the four statistics at each call.

The functions here compute the same thing from the same variables:

- Inference (the moving statistics): the normalization is a per-channel
  affine map, `y = x * scale + shift` with `scale = gamma / sqrt(var + eps)`
  and `shift = beta - mean * scale`. After a convolution it is folded into
  it where that is cheaper (`_folding_pays`): the kernel's output channels
  multiplied by `scale` (a pass over the kernel, not over the activations)
  and one bias, `bias * scale + shift`, which `Conv2D.convolve` adds inside
  the convolution (PyTorch; TensorFlow's graph optimizer fuses its
  `BiasAdd`, and a ReLU after it). Elsewhere it is that affine map, one
  multiply-add from factors computed once per call.
- Training (batch statistics): Keras' moments, then the same affine map from
  the per-channel factors (two passes, multiply and add), and Keras'
  moving-average updates.

Nothing is stored: the factors come from the current variables at each call,
so weights, `get_config`, `.keras` files, `set_weights` transfers and
keras.applications compatibility are those of the two layers. The
normalization follows Keras' rules: batch statistics when called with
`training=True` on a trainable layer, statistics in float32 under mixed
precision, `momentum`, `epsilon` and `synchronized` (TensorFlow) as set on
the `BatchNormalization` layer. `scale=False`, `center=False`, `renorm` and
masks are not used by the blocks and are not handled here.
"""

import math

import keras
from keras import ops

from keras_blocks.layers._conv import DepthwiseConv2D


def conv_bn(conv, bn, inputs, training=None):
    """`bn(conv(inputs), training=training)`, folded at inference.

    Args:
        conv: a built `Conv2D` or `DepthwiseConv2D` of `_conv`, without an
            activation.
        bn: a built `keras.layers.BatchNormalization` over its output channels.
        inputs: 4D tensor, in the convolution's compute dtype.
        training: bool or None, as for the `BatchNormalization` layer.
    """
    if _uses_batch_statistics(bn, training) or not _folding_pays(conv, inputs):
        return batch_norm(bn, conv(inputs), training=training)

    def folded():
        scale, shift = _factors(bn, bn.moving_mean, bn.moving_variance)
        kernel = ops.cast(conv.kernel, "float32")
        if isinstance(conv, DepthwiseConv2D):
            # (h, w, in, multiplier): output channel c * multiplier + m
            kernel = kernel * ops.reshape(scale, kernel.shape[2:])
        else:  # (h, w, in / groups, out)
            kernel = kernel * scale
        if conv.use_bias:
            shift = ops.cast(conv.bias, "float32") * scale + shift
        dtype = conv.compute_dtype
        return ops.cast(kernel, dtype), ops.cast(shift, dtype)

    sources = conv._sources()
    if sources is not None:
        sources += (
            bn.gamma,
            bn.beta,
            bn.moving_mean,
            bn.moving_variance,
            bn.epsilon,
        )
    return conv.convolve(inputs, folded, sources)


def _folding_pays(conv, inputs):
    """Whether folding costs less than the affine map after the convolution.

    - PyTorch: always. Inference keeps the folded kernel while the variables
      are unchanged (`_torch_ops`), so folding costs nothing after the
      first call, and the bias is added inside `conv2d`.
    - JAX: never. XLA fuses the multiply-add (and the activation after it)
      into one pass over the convolution's output, which the bias of a
      folded convolution costs too; folding only adds a pass over the
      kernel. Folded, ResNet-50's inference took 1.01x keras.applications'
      time on the CPU and 1.12x on an H200.
    - TensorFlow: where the kernel has fewer elements than twice the
      output. The bias goes into the convolution, but the kernel is scaled
      at every call, against a multiply and an add over the output: ResNet-
      50's first stages fold (a 1x1 kernel of 16 K elements against 6.4 M
      outputs at batch 8), the 3x3 convolutions of its last stage do not
      (2.4 M against 0.2 M), nor most convolutions at batch 1.
    """
    backend = keras.config.backend()
    if backend != "tensorflow":
        return backend == "torch"
    outputs = conv.compute_output_shape(tuple(inputs.shape))
    if any(size is None for size in outputs):
        return True
    return math.prod(conv.kernel.shape) < 2 * math.prod(outputs)


def batch_norm(bn, inputs, training=None):
    """`bn(inputs, training=training)` as one per-channel multiply-add.

    The moving statistics are updated as Keras' layer updates them when it
    uses batch statistics.
    """
    x = ops.cast(inputs, "float32")  # the statistics of float16 overflow
    if not _uses_batch_statistics(bn, training):
        outputs = _affine(bn, x, bn.moving_mean, bn.moving_variance)
        return ops.cast(outputs, bn.compute_dtype)
    normalized = None
    if keras.config.backend() == "torch":
        from keras_blocks.layers import _torch_ops

        normalized = _torch_ops.batch_norm_with_batch_statistics(bn, x)
    if normalized is None:
        axes = [axis for axis in range(len(x.shape)) if axis != bn.axis % len(x.shape)]
        mean, variance = ops.moments(x, axes=axes, synchronized=bn.synchronized)
        normalized = _affine(bn, x, mean, variance), mean, variance
    outputs, mean, variance = normalized
    momentum = bn.momentum
    bn.moving_mean.assign(bn.moving_mean * momentum + mean * (1.0 - momentum))
    bn.moving_variance.assign(
        bn.moving_variance * momentum + variance * (1.0 - momentum)
    )
    return ops.cast(outputs, bn.compute_dtype)


def _affine(bn, x, mean, variance):
    """`x * scale + shift`, the normalization by `mean` and `variance`."""
    scale, shift = _factors(bn, mean, variance)
    shape = [1] * len(x.shape)
    shape[bn.axis] = -1
    return x * ops.reshape(scale, shape) + ops.reshape(shift, shape)


def _uses_batch_statistics(bn, training):
    # Keras' rule: a frozen layer normalizes with its moving statistics.
    return bool(training) and bn.trainable


def _factors(bn, mean, variance):
    """(scale, shift), float32 vectors: normalizing is `x * scale + shift`."""
    scale = ops.cast(bn.gamma, "float32") * ops.rsqrt(
        ops.cast(variance, "float32") + bn.epsilon
    )
    shift = ops.cast(bn.beta, "float32") - ops.cast(mean, "float32") * scale
    return scale, shift
