"""Our convolutions and batch normalization on the PyTorch backend.

## Convolutions: one `conv2d`, bias included

Keras' `ops.conv` on PyTorch transposes at every call: the kernel from
Keras' layout `(h, w, in, out)` to PyTorch's `(out, in, h, w)` (a copy
that, at ResNet-50's last stage at batch 8, took as long as the convolution
itself), and for `channels_last` the input to NCHW and back, with two more
copies into PyTorch's channels-last memory format; it adds the bias in a
pass of its own. Here:

- `channels_last` inputs are handed to `conv2d` as a permuted view: an NCHW
  shape with channels-last strides, which oneDNN convolves as it is, and
  whose output, permuted back, is already NHWC. No copy of the activations.
- In training on the CPU, a strided 1x1 convolution is convolved without
  strides on the pixels it reads (`_subsamples`): oneDNN's gradient of a
  strided 1x1 kernel corrupts memory on AVX2 CPUs.
- The bias goes into `conv2d`, which adds it inside the convolution.
- Without gradients (inference: `predict`, `evaluate`, `torch.no_grad()`),
  the kernel in PyTorch's layout, and the bias, are kept while what they
  are computed from is unchanged: the same tensor objects at the same
  version and storage (PyTorch counts in-place writes, which `assign`,
  `set_weights` and the optimizers make), and the same other values (a BN's
  epsilon). Anything else recomputes them. With gradients they
  are computed at each call, so the gradients reach the variables.

## Batch normalization with batch statistics: one `batch_norm`

`batch_norm_with_batch_statistics` normalizes with PyTorch's `batch_norm`,
one kernel forward and one backward, where Keras' operations (moments, then
the multiply-add) took five forward and more backward, which made the BN of a
ResNet-50 training step cost about three times PyTorch's. Keras' semantics
are kept: the batch's biased variance normalizes and goes into the moving
variance (PyTorch's own running update would use the unbiased one), the
updates use Keras' momentum, and the statistics are float32.
"""

import weakref

import keras
import torch
from keras import ops
from torch.nn import functional

from keras_blocks.layers._padding import as_symmetric, same_padding

# layer: (the source tensors, the sources' key, (kernel, bias) in torch layout)
_derived = weakref.WeakKeyDictionary()


def convolve(layer, inputs, weights, sources, depthwise=False):
    """`layer`'s convolution of `inputs` by `weights()`, a `(kernel, bias)`
    pair in Keras' layout (bias None for none), which depends on `sources`
    only: Keras variables and other values it reads, such as a BN's epsilon
    (None: on something else too; never kept)."""
    kernel, bias = _torch_weights(layer, inputs, weights, sources, depthwise)
    channels_last = layer.data_format == "channels_last"
    x = inputs.permute(0, 3, 1, 2) if channels_last else inputs  # (b, c, h, w)
    strides = layer.strides
    if _subsamples(x, kernel, strides):
        x = x[:, :, :: strides[0], :: strides[1]]  # (b, c, h / sh, w / sw)
        strides = (1, 1)
    x, padding = _padding(layer, x, kernel.shape[2:], strides)
    outputs = functional.conv2d(
        x,
        kernel,
        bias,
        stride=strides,
        padding=padding,
        dilation=layer.dilation_rate,
        groups=x.shape[1] if depthwise else layer.groups,  # depthwise: per channel
    )
    return outputs.permute(0, 2, 3, 1) if channels_last else outputs


def _subsamples(x, kernel, strides):
    """Whether a strided 1x1 convolution runs as one without strides on the
    pixels it reads (the same sums; its "same" padding is none).

    In training on the CPU: oneDNN's gradient of a strided 1x1 kernel
    (`jit_avx2_1x1_convolution_bwd_weights`, PyTorch 2.13) writes past the
    end of its output on AVX2 CPUs (an AMD EPYC), which corrupted the heap
    and killed the process in a later step; without strides it takes another
    kernel. Inference keeps the strided convolution, whose forward kernels
    are sound, and so do exports (`torch.export`, `torch.onnx`), which trace
    with gradients on: a file keeps one strided `Conv`.
    """
    return (
        tuple(kernel.shape[2:]) == (1, 1)
        and tuple(strides) != (1, 1)
        and x.device.type == "cpu"
        and torch.is_grad_enabled()
        and not torch.jit.is_tracing()
        and not torch.compiler.is_exporting()
    )


def _torch_weights(layer, inputs, weights, sources, depthwise):
    keep = (
        sources is not None
        and not torch.is_grad_enabled()
        and inputs.device.type != "meta"  # Keras' symbolic calls
    )
    if not keep:
        return _to_torch_layout(*weights(), depthwise)
    key, tensors = _key(sources)
    kept = _derived.get(layer)
    if (
        kept is not None
        and all(a is b for a, b in zip(kept[0], tensors, strict=True))
        and kept[1] == key
    ):
        return kept[2]
    derived = _to_torch_layout(*weights(), depthwise)
    # The tensors themselves are kept, so that their ids are not reused.
    _derived[layer] = (tensors, key, derived)
    return derived


def _key(sources):
    """(what identifies `sources`' current values, their tensors).

    A variable's tensor counts by its version and its storage: in-place
    writes (`assign`, optimizers, `copy_`) raise the version, and replacing
    the tensor's data (`p.data = ...`) moves the storage. Writes through
    `p.data` in place are seen by neither, as by nothing in PyTorch's
    autograd: assign the variable instead. Other sources (a BN's epsilon)
    count by value.
    """
    key, tensors = [], []
    for source in sources:
        if isinstance(source, keras.Variable):
            tensor = source.value
            tensors.append(tensor)
            key.append((tensor._version, tensor.data_ptr()))
        else:
            key.append(source)
    return tuple(key), tuple(tensors)


def _to_torch_layout(kernel, bias, depthwise):
    kernel = ops.convert_to_tensor(kernel)  # a variable's value (autocast)
    bias = None if bias is None else ops.convert_to_tensor(bias)
    if depthwise:
        # (h, w, in, multiplier) -> (in * multiplier, 1, h, w)
        height, width, channels, multiplier = kernel.shape
        kernel = kernel.permute(2, 3, 0, 1).reshape(
            channels * multiplier, 1, height, width
        )
    else:
        kernel = kernel.permute(3, 2, 0, 1)  # (out, in / groups, h, w)
    return kernel.contiguous(), bias


def _padding(layer, x, kernel_size, strides):
    """(inputs, conv2d's padding): Keras' "same" pads the extra row and
    column at the bottom and right, which conv2d's symmetric padding cannot
    say; then the input is padded explicitly."""
    if layer.padding == "valid":
        return x, 0
    pads = same_padding(
        # Python ints: torch.onnx's tracer sees the sizes as tensors, and
        # exported `pad` amounts computed from them as a wrong `Pad`.
        [int(size) for size in x.shape[2:]],
        kernel_size,
        strides,
        layer.dilation_rate,
    )
    symmetric = as_symmetric(pads)
    if symmetric is not None:
        return x, symmetric
    (top, bottom), (left, right) = pads
    return functional.pad(x, (left, right, top, bottom)), 0


def batch_norm_with_batch_statistics(bn, x):
    """`bn`'s training-mode normalization of the float32 `x`: the output, and
    the batch's mean and (biased) variance; None where a channel has a single
    value (PyTorch refuses those; Keras normalizes them to `beta`)."""
    axis = bn.axis % x.ndim
    count = x.numel() // x.shape[axis]
    if count < 2:
        return None
    # Zeros with momentum 1: batch_norm writes the batch's statistics there.
    mean = torch.zeros(x.shape[axis], dtype=x.dtype, device=x.device)
    variance = torch.zeros_like(mean)
    outputs = functional.batch_norm(
        x.movedim(axis, 1),  # a view: (batch, channels, ...)
        mean,
        variance,
        ops.convert_to_tensor(bn.gamma),
        ops.convert_to_tensor(bn.beta),
        training=True,
        momentum=1.0,
        eps=bn.epsilon,
    ).movedim(1, axis)
    return outputs, mean, variance * ((count - 1) / count)  # unbiased -> biased
