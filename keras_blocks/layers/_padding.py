"""PyTorch's symmetric padding, and Keras' "same" padding in amounts.

PyTorch pads a convolution with an odd `(kh, kw)` kernel by `kh // 2` rows
at the top and bottom and `kw // 2` columns left and right, whatever its
stride ("symmetric" in our blocks). Keras' "same" pads as much in total as
the stride needs, the odd one extra at the bottom and right. Without a
stride they agree; with one, the symmetric padding is a `ZeroPadding2D`
ahead of a "valid" convolution.
"""

import keras


def symmetric_padding(kernel_size):
    """PyTorch's padding of an odd `(kh, kw)` kernel:
    `((kh // 2, kh // 2), (kw // 2, kw // 2))`, rows then columns."""
    return tuple((k // 2, k // 2) for k in kernel_size)


def symmetric_padding_layer(layer, kernel_size, strides, name):
    """The `ZeroPadding2D` named `name` that pads the input of `layer`'s
    convolution of `kernel_size` and `strides` symmetrically, or None where
    the convolution pads by itself: `layer.padding` other than "symmetric",
    or the same result as "same" (a stride of 1, or a 1x1 kernel)."""
    if layer.padding != "symmetric" or strides == 1 or max(kernel_size) == 1:
        return None
    return keras.layers.ZeroPadding2D(
        symmetric_padding(kernel_size),
        data_format=layer.data_format,
        dtype=layer.dtype_policy,
        name=name,
    )


def same_padding(sizes, kernel_size, strides, dilation_rate):
    """Keras' "same" padding of an input of spatial `sizes` (ints):
    `((top, bottom), (left, right))`, the odd one extra at the bottom and
    right."""
    pads = []
    for size, kernel, stride, dilation in zip(
        sizes, kernel_size, strides, dilation_rate, strict=True
    ):
        extent = (kernel - 1) * dilation + 1
        total = max((-(-size // stride) - 1) * stride + extent - size, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def as_symmetric(pads):
    """`((top, bottom), (left, right))` as symmetric padding amounts
    `(rows, columns)`, as PyTorch's convolutions take them; None where a side
    gets more than its opposite."""
    if any(before != after for before, after in pads):
        return None
    return tuple(before for before, _ in pads)
