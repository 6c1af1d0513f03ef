"""Multiply-accumulates (MACs) of a Keras model for one image, as papers count FLOPs.

The papers' "FLOPs" are multiply-adds: the ResNet paper's 3.6 billion for
ResNet-34 are "multiply-adds" (He et al. 2016, section 3.3), GoogLeNet's
budget is "1.5 billion multiply-adds". This module counts them the same way,
for the layers that hold nearly all of them:

- a convolution: output elements x kernel height x kernel width x input
  channels per group (grouped convolutions: `in_channels / groups`;
  depthwise: 1 input channel per output channel);
- a dense layer or any matrix product: rows x columns x the contracted size
  (`in x out` for one image).

Batch normalization, activations, pooling, additions, the SE gate's
multiplication and the bias additions are not counted, as in the papers; nor
is local response normalization, whose window sums the library computes as a
small matrix product on TensorFlow (an implementation detail, not a layer the
papers count).

The count is read off TensorFlow's graph: the model is traced in a
`tf.function` for a batch of one, and the MACs are summed over the graph's
`Conv2D`, `DepthwiseConv2dNative`, `Conv2DBackpropInput` (transposed
convolution), `Conv3D`, `MatMul`, `BatchMatMul*` and `Einsum` operations from
their static shapes, including those inside nested functions (Keras runs
grouped convolutions in one). So it needs the TensorFlow backend, and counts
what the model computes, whichever layers it is assembled from.

    KERAS_BACKEND=tensorflow python -m tools.flops --application ResNet50
    KERAS_BACKEND=tensorflow python -m tools.flops --model resnet50

    count_macs(keras.applications.ResNet50(weights=None))  # 3,857,973,248
    count_macs(keras.applications.EfficientNetB0(weights=None))  # 385,814,752
"""

import argparse
import collections
import math
import os
import re

from examples._cli import model_name


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--application", help="a keras.applications model, e.g. ResNet50"
    )
    source.add_argument(
        "--model", type=model_name, help="a model of keras_blocks.models, e.g. resnet50"
    )
    parser.add_argument(
        "--input-size", type=int, help="image height and width (default: native)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from keras_blocks.layers import LocalResponseNormalization

CONVOLUTIONS = ("Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv2DBackpropInput")
MATRIX_PRODUCTS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
CALLS = ("PartitionedCall", "StatefulPartitionedCall")


def count_macs(model, input_shape=None):
    """The model's multiply-accumulates for one image (batch size 1).

    Args:
        model: keras.Model. Built on the TensorFlow backend.
        input_shape: tuple or None. Shape of one image, without the batch axis;
            needed when the model's input has unknown sizes (single-input
            models only). Default: the model's input shape.

    Returns:
        int. The MACs of its convolutions and matrix products.

    Raises:
        RuntimeError: on another backend than TensorFlow.
        ValueError: when an input size is unknown.
    """
    return sum(macs for _, _, macs in mac_table(model, input_shape))


def mac_table(model, input_shape=None):
    """(operation name, operation type, MACs) of each counted operation.

    The names start with the Keras layer's (`"resnet50/conv1_conv/..."`), so
    the rows can be grouped by layer. Arguments as `count_macs`.
    """
    graph = _trace(model, input_shape)
    skipped = _uncounted_scopes(model)
    return [
        row
        for row in _graph_macs(graph, prefix="")
        if not skipped.intersection(_scopes(row[0]))
    ]


def _uncounted_scopes(model):
    """Names of the layers whose operations are not counted (LRN), nested
    models included."""
    names, stack = set(), [model]
    while stack:
        layer = stack.pop()
        if isinstance(layer, LocalResponseNormalization):
            names.add(layer.name)
        stack.extend(getattr(layer, "layers", ()))
    return names


def _scopes(op_name):
    """The name scopes of an operation, as written and without the `_1` that
    TensorFlow adds to a scope used again: "alexnet_1/norm1_1/MatMul" ->
    {"alexnet_1", "alexnet", "norm1_1", "norm1"}."""
    parts = op_name.split("/")[:-1]
    return {*parts, *(re.sub(r"_\d+$", "", part) for part in parts)}


def macs_by_type(model, input_shape=None):
    """MACs per operation type, e.g. `{"Conv2D": ..., "MatMul": ...}`."""
    totals = collections.Counter()
    for _, op_type, macs in mac_table(model, input_shape):
        totals[op_type] += macs
    return dict(totals)


def _trace(model, input_shape):
    """The graph of `model` called on a batch of one, for inference."""
    if keras.config.backend() != "tensorflow":
        raise RuntimeError(
            "Counting MACs traces the model with TensorFlow: set "
            "KERAS_BACKEND=tensorflow. Received: backend="
            f"{keras.config.backend()!r}"
        )
    import tensorflow as tf

    inputs = model.inputs
    if input_shape is not None:
        if len(inputs) != 1:
            raise ValueError(
                "Invalid value for argument `input_shape`. Expected None for a "
                f"model with {len(inputs)} inputs. Received: "
                f"input_shape={input_shape!r}"
            )
        shapes = [tuple(input_shape)]
    else:
        shapes = [tuple(tensor.shape[1:]) for tensor in inputs]
    for shape in shapes:
        if None in shape:
            raise ValueError(
                "Invalid value for argument `input_shape`. The model's input "
                f"has unknown sizes {shape}; pass the shape of one image. "
                f"Received: input_shape={input_shape!r}"
            )
    specs = [
        tf.TensorSpec((1, *shape), tensor.dtype)
        for shape, tensor in zip(shapes, inputs, strict=True)
    ]
    function = tf.function(lambda *x: model(list(x) if len(x) > 1 else x[0]))
    return function.get_concrete_function(*specs).graph


def _graph_macs(graph, prefix):
    """Yields (name, type, MACs) for the operations of `graph`, recursively."""
    for op in graph.get_operations():
        if op.type in CALLS:  # a nested function, e.g. Keras' grouped conv
            function = graph._get_function(op.get_attr("f").name)
            yield from _graph_macs(function.graph, prefix=f"{op.name}/")
            continue
        macs = _op_macs(op)
        if macs:
            yield prefix + op.name, op.type, macs


def _op_macs(op):
    """MACs of one TensorFlow operation; 0 for those that are not counted."""
    if op.type not in (*CONVOLUTIONS, *MATRIX_PRODUCTS, "Einsum"):
        return 0
    shapes = [_static(tensor.shape, op) for tensor in (*op.inputs, *op.outputs)]
    if op.type in ("Conv2D", "Conv3D"):
        # kernel (*window, in / groups, out): each output element sums over
        # the window and the input channels of its group.
        kernel, output = shapes[1], shapes[-1]
        return math.prod(output) * math.prod(kernel[:-1])
    if op.type == "DepthwiseConv2dNative":
        # kernel (kh, kw, in, multiplier): one input channel per output.
        kernel, output = shapes[1], shapes[-1]
        return math.prod(output) * kernel[0] * kernel[1]
    if op.type == "Conv2DBackpropInput":
        # inputs (output_sizes, kernel (kh, kw, out, in), gradient): each
        # element of the (smaller) input spreads over a window of outputs.
        kernel, incoming = shapes[1], shapes[2]
        return math.prod(incoming) * kernel[0] * kernel[1] * kernel[2]
    if op.type == "Einsum":
        return _einsum_macs(op, shapes)
    # (MatMul, BatchMatMul*) output (..., m, n), contracted size k.
    a, output = shapes[0], shapes[-1]
    adjoint = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
    k = a[-2] if adjoint else a[-1]
    return math.prod(output) * k


def _einsum_macs(op, shapes):
    """A two-operand einsum: the product of the sizes of all its indices."""
    equation = op.get_attr("equation").decode().replace(" ", "")
    operands = equation.split("->")[0].split(",")
    if len(operands) != 2 or "." in equation:
        raise ValueError(
            f"Cannot count the MACs of einsum {equation!r} in operation "
            f"'{op.name}': only two-operand einsums without ellipsis are known."
        )
    sizes = {}
    for letters, shape in zip(operands, shapes, strict=False):
        sizes.update(zip(letters, shape, strict=True))
    return math.prod(sizes.values())


def _static(shape, op):
    if not shape.is_fully_defined():
        raise ValueError(
            f"Operation '{op.name}' ({op.type}) has an unknown shape {shape}; "
            "pass the shape of one image as `input_shape`."
        )
    return tuple(shape.as_list())


def _format(macs):
    return f"{macs:,} ({macs / 1e9:.3f} G)"


def main(argv=None):
    args = parse_args(argv)

    shape = None if args.input_size is None else (args.input_size,) * 2 + (3,)
    if args.application:
        build = getattr(keras.applications, args.application)
        model = build(weights=None, **({} if shape is None else {"input_shape": shape}))
        name = f"keras.applications.{args.application}"
    else:
        from keras_blocks.models import get_model

        model = get_model(args.model, input_shape=shape)
        name = args.model
    macs = count_macs(model)
    print(f"{name}: {model.count_params():,} parameters, {_format(macs)} MACs")
    for op_type, count in sorted(macs_by_type(model).items()):
        print(f"  {op_type:<24} {_format(count)}")
    return macs


if __name__ == "__main__":
    main()
