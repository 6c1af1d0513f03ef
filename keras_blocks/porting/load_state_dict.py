"""Loading a PyTorch state dict into a Keras model, strictly."""

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from keras_blocks import _compat
from keras_blocks.porting.state_dict_file import read_state_dict, state_dict_arrays

# Keys PyTorch's BatchNorm keeps that no Keras weight holds.
SKIPPED_SUFFIXES = (".num_batches_tracked",)
LISTED = 8  # keys shown per kind of problem in an error


@dataclasses.dataclass(frozen=True)
class Flattened:
    """A source `nn.Linear` that reads flattened convolution features.

    PyTorch flattens a `(channels, height, width)` feature map in that order;
    Keras' `Flatten` orders the features `(height, width, channels)` in both
    data formats (it moves a `channels_first` map's channels last first), so
    the rows of the dense kernel are reordered (VGG's and AlexNet's first
    classifier layer).

    Args:
        prefix: str. The source module's key prefix, e.g. `"classifier.0"`.
        feature_shape: tuple of 3 ints. The flattened map's
            `(channels, height, width)`, as PyTorch has it.

    Examples:
    >>> import keras, numpy as np
    >>> from keras_blocks.porting import Flattened, load_state_dict
    >>> model = keras.Sequential([keras.Input((2, 2, 3)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(5, name="fc")])
    >>> state = {"classifier.weight": np.ones((5, 12), "float32"),
    ...          "classifier.bias": np.zeros(5, "float32")}
    >>> spec = Flattened("classifier", feature_shape=(3, 2, 2))
    >>> print(load_state_dict(model, state, {"fc": spec}).summary())
    Loaded 2 tensors (65 values) into 1 layer.
    """

    prefix: str
    feature_shape: tuple[int, int, int]


@dataclasses.dataclass
class LoadReport:
    """What `load_state_dict` loaded: a line per Keras weight, and the source
    keys left out on purpose.

    Attributes:
        matched: list of (Keras weight path, source key, shape).
        ignored: list of str. Source keys left out by `ignore`.
        skipped: list of str. `num_batches_tracked` keys.
        kept: list of str. Keras layers the mapping keeps as they were.

    Examples:
    >>> import keras, numpy as np
    >>> from keras_blocks.porting import load_state_dict
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(2, name="fc")], name="net")
    >>> state = {"fc.weight": np.ones((2, 4), "float32"),
    ...          "fc.bias": np.zeros(2, "float32"), "aux.weight": np.ones(3)}
    >>> report = load_state_dict(model, state, {"fc": "fc"}, ignore=("aux.",))
    >>> report.matched[0]
    ('net/fc/kernel', 'fc.weight', (4, 2))
    >>> report.ignored
    ['aux.weight']
    """

    matched: list[tuple[str, str, tuple[int, ...]]]  # (weight, key, shape)
    ignored: list[str]  # by `ignore`
    skipped: list[str]  # num_batches_tracked
    kept: list[str]  # Keras layers the mapping leaves as they were

    @property
    def values(self) -> int:
        return sum(int(np.prod(shape)) for _, _, shape in self.matched)

    def summary(self) -> str:
        layers = len({w.rsplit("/", 1)[0] for w, _, _ in self.matched})
        lines = [
            f"Loaded {_count(len(self.matched), 'tensor')} "
            f"({self.values:,} values) into {_count(layers, 'layer')}."
        ]
        if self.ignored:
            lines.append(
                f"Ignored {_count(len(self.ignored), 'key')}: {_listed(self.ignored)}"
            )
        if self.skipped:
            lines.append(
                f"Skipped {_count(len(self.skipped), 'num_batches_tracked buffer')}."
            )
        if self.kept:
            lines.append(f"Kept as they were: {_listed(self.kept)}")
        return "\n".join(lines)


def load_state_dict(
    model: keras.Model,
    source: str | os.PathLike | Mapping[str, Any],
    mapping: Mapping[str, str | Flattened | None],
    *,
    ignore: tuple[str, ...] = (),
    bn_epsilon: float | None = 1e-5,
    layout_hint: str | None = None,
) -> LoadReport:
    """Loads a PyTorch state dict into `model`, as PyTorch's strict
    `load_state_dict` does: every weight filled, every key used.

    The mapping names, for each Keras layer with weights (by its path of layer
    names from the model, e.g. `"conv2_block1/conv1/conv"`), the source
    module's key prefix (`"layer1.0.conv1"`). Each layer's tensors are
    converted by kind:

    - `Conv2D` (grouped too): `weight` from PyTorch's `(out, in / groups, h, w)`
      to Keras' `(h, w, in / groups, out)`; `bias`.
    - `DepthwiseConv2D`: `(channels * multiplier, 1, h, w)` to
      `(h, w, channels, multiplier)`; `bias`.
    - `Dense`: `(out, in)` (or a 1x1 convolution's `(out, in, 1, 1)`)
      transposed; a `Flattened` source's rows reordered as Keras flattens.
    - `BatchNormalization`: `weight`, `bias`, `running_mean`, `running_var`
      to `gamma`, `beta`, `moving_mean`, `moving_variance`
      (`num_batches_tracked` is skipped).

    Every problem is found before anything changes, and reported in one
    `ValueError`: source keys the mapping needs and the file lacks (missing),
    keys nothing uses (unexpected, unless they start with a prefix in
    `ignore`), shapes that differ, Keras layers with weights that the mapping
    does not name, mapping entries that name no layer, a dense layer that
    reads a flattened feature map without `Flattened` (or with another
    feature shape), and batch normalization whose epsilon is not the
    source's. The model's weights are left as they were.

    Args:
        model: keras.Model. A built model.
        source: a `.safetensors`, `.pth` or `.pt` file (see
            `read_state_dict`), or a state dict already read (tensors or
            arrays by key).
        mapping: dict. Keras layer path -> source prefix (str), `Flattened`,
            or None for a layer kept as it is (it must have no source keys).
        ignore: tuple of str. Source key prefixes not loaded (a classifier the
            model does not have, auxiliary heads).
        bn_epsilon: float or None. The source's batch normalization epsilon
            (default: `torch.nn.BatchNorm2d`'s); every mapped
            `BatchNormalization` must use it. None skips the check.
        layout_hint: str or None. Added to the error: the option of the
            model's builder that decides its layout.

    Returns:
        A `LoadReport` (its `summary()` says what was matched).

    Examples:
    >>> import keras, numpy as np
    >>> from keras_blocks.porting import load_state_dict
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(2, name="fc")], name="net")
    >>> state = {"fc.weight": np.ones((2, 4), "float32"),
    ...          "fc.bias": np.zeros(2, "float32")}
    >>> report = load_state_dict(model, state, {"fc": "fc"})
    >>> print(report.summary())
    Loaded 2 tensors (10 values) into 1 layer.
    >>> load_state_dict(model, state, {"fc": "head"})
    Traceback (most recent call last):
    ...
    ValueError: Cannot load the state dict into model 'net':
    - 2 missing keys (the file lacks them): head.weight, head.bias
    - 2 unexpected keys (nothing in the model takes them): fc.weight, fc.bias
    The model's weights are unchanged.
    """
    if not isinstance(model, keras.Model) or not model.built or not model.weights:
        raise ValueError(
            "Invalid value for argument `model`. Expected a built Keras model "
            f"with weights (call it on an input first). Received: model={model!r}"
        )
    if isinstance(source, Mapping):
        name, arrays = "the state dict", state_dict_arrays(source)
    else:
        name, arrays = os.fspath(source), read_state_dict(source)
    layers = weight_layers(model)
    reads_flattened = _dense_after_flatten(model)
    problems = _Problems()
    assignments = []  # (variable, array, key)
    used = set()
    for path, spec in mapping.items():
        layer = layers.get(path)
        if layer is None:
            problems.unknown_layers.append(path)
            continue
        if spec is None:
            continue
        prefix = spec.prefix if isinstance(spec, Flattened) else spec
        flattened = reads_flattened.get(id(layer))
        if flattened and flattened[1] * flattened[2] > 1:
            if not isinstance(spec, Flattened):
                problems.flattening.append(
                    f"{path} reads features flattened from a {flattened[1]}x"
                    f"{flattened[2]} map: map it to Flattened({prefix!r}, "
                    f"feature_shape={flattened}) so that its rows are reordered "
                    "from PyTorch's (channels, height, width) order"
                )
            elif tuple(spec.feature_shape) != flattened:
                problems.flattening.append(
                    f"{path}: Flattened feature_shape={tuple(spec.feature_shape)}, "
                    f"but the model flattens {flattened[0]} channels of "
                    f"{flattened[1]}x{flattened[2]}: feature_shape={flattened} "
                    "(PyTorch's order: channels, height, width)"
                )
                used.update((f"{prefix}.weight", f"{prefix}.bias"))
                continue
        for variable, key, convert, source_shape in _conversions(layer, prefix, spec):
            used.add(key)
            if key not in arrays:
                problems.missing.append(key)
                continue
            array = arrays[key]
            if tuple(array.shape) not in source_shape:
                problems.shapes.append(
                    f"{key}: the file has {tuple(array.shape)}, the model's "
                    f"{path} needs {source_shape[0]}"
                )
                continue
            assignments.append((variable, convert(array), key))
        if (
            bn_epsilon is not None
            and isinstance(layer, keras.layers.BatchNormalization)
            and not np.isclose(layer.epsilon, bn_epsilon, rtol=1e-6, atol=0)
        ):
            problems.epsilons.append(f"{path} ({layer.epsilon:g})")
    problems.unmapped = [path for path in layers if path not in mapping]
    ignored, skipped = [], []
    for key in arrays:
        if key in used:
            continue
        if key.endswith(SKIPPED_SUFFIXES):
            skipped.append(key)
        elif key.startswith(tuple(ignore)) and ignore:
            ignored.append(key)
        else:
            problems.unexpected.append(key)
    if problems:
        hint = f" {layout_hint}" if layout_hint else ""
        raise ValueError(
            f"Cannot load {name} into model '{model.name}':\n"
            f"{problems.describe(bn_epsilon)}\n"
            f"The model's weights are unchanged.{hint}"
        )
    for variable, array, _ in assignments:
        variable.assign(array.astype(variable.dtype, copy=False))
    matched = [(v.path, key, tuple(v.shape)) for v, _, key in assignments]
    kept = [path for path, spec in mapping.items() if spec is None]
    return LoadReport(matched, ignored, skipped, kept)


class _Problems:
    def __init__(self):
        self.missing, self.unexpected, self.shapes = [], [], []
        self.unmapped, self.unknown_layers, self.epsilons = [], [], []
        self.flattening = []

    def __bool__(self):
        return any(vars(self).values())

    def describe(self, bn_epsilon):
        parts = []
        for items, what in (
            (self.missing, "missing keys (the file lacks them)"),
            (self.unexpected, "unexpected keys (nothing in the model takes them)"),
            (self.shapes, "shape mismatches"),
            (self.unmapped, "model layers with weights the mapping leaves out"),
            (self.unknown_layers, "mapping entries that name no layer of the model"),
            (self.flattening, "dense layers after a flatten"),
        ):
            if items:
                parts.append(f"- {len(items)} {what}: {_listed(items)}")
        if self.epsilons:
            parts.append(
                f"- batch normalization epsilon: the source uses {bn_epsilon:g}, "
                f"and these layers of the model do not: {_listed(self.epsilons)}. "
                "Build the model with the source's epsilon"
            )
        return "\n".join(parts)


def _dense_after_flatten(model):
    """{id(Dense layer): (channels, height, width)} for the dense layers that
    read a `Flatten` of a feature map (through layers without weights that
    keep the shape: dropout, activations), as far as the model's graph shows
    them; PyTorch's order of the map's axes."""
    found = {}
    for flatten in _compat.nested_layers(model, recursive=True):
        if not isinstance(flatten, keras.layers.Flatten):
            continue
        try:
            shape = tuple(flatten.input.shape)
            nodes = _compat.outbound_nodes(flatten)
        except (AttributeError, ValueError):  # not called in a graph
            continue
        if len(shape) != 4 or None in shape[1:]:
            continue
        if flatten.data_format == "channels_first":
            feature_shape = (shape[1], shape[2], shape[3])
        else:
            feature_shape = (shape[3], shape[1], shape[2])
        while nodes:
            layer = nodes.pop().operation
            if isinstance(layer, keras.layers.Dense):
                found[id(layer)] = tuple(int(d) for d in feature_shape)
            elif not layer.weights and isinstance(layer, keras.layers.Layer):
                nodes.extend(_compat.outbound_nodes(layer))
    return found


def _count(number, word):
    return f"{number} {word}{'' if number == 1 else 's'}"


def _listed(items):
    shown = ", ".join(items[:LISTED])
    return shown + (f", and {len(items) - LISTED} more" if len(items) > LISTED else "")


def weight_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """The layers of `model` that own weights, by their path of layer names
    from the model (`"conv2_block1/conv1/conv"`): the keys of a mapping.

    Convolution, depthwise convolution, dense and batch normalization layers
    count as one even where they have sublayers; another layer counts as
    its sublayers, or as one if it has none.

    Examples:
    >>> import keras
    >>> from keras_blocks.layers import ConvBNAct
    >>> from keras_blocks.porting import weight_layers
    >>> inputs = keras.Input((8, 8, 3))
    >>> model = keras.Model(inputs, ConvBNAct(4, 3, name="stem")(inputs))
    >>> list(weight_layers(model))
    ['stem/conv', 'stem/bn']
    """
    found = {}

    def visit(layer, path):
        children = _compat.nested_layers(layer, recursive=False)
        if not children or isinstance(layer, _LEAVES):
            if layer.weights:
                found[path] = layer
            return
        for child in children:
            visit(child, f"{path}/{child.name}" if path else child.name)

    for layer in model.layers:
        visit(layer, layer.name)
    return found


_LEAVES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Dense,
    keras.layers.BatchNormalization,
)


def _conversions(layer, prefix, spec):
    """(variable, source key, convert, accepted source shapes) per weight."""
    if isinstance(layer, keras.layers.BatchNormalization):
        names = {
            "gamma": "weight",
            "beta": "bias",
            "moving_mean": "running_mean",
            "moving_variance": "running_var",
        }
        for variable in layer.weights:
            short = variable.path.rsplit("/", 1)[-1]
            yield variable, f"{prefix}.{names[short]}", _same, [tuple(variable.shape)]
        return
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kernel_convert, kernel_shapes = _depthwise(layer.kernel.shape)
    elif isinstance(layer, keras.layers.Conv2D):
        height, width, inputs, outputs = layer.kernel.shape
        kernel_shapes = [(outputs, inputs, height, width)]
        kernel_convert = _oihw_to_hwio
    elif isinstance(layer, keras.layers.Dense):
        kernel_convert, kernel_shapes = _dense(layer.kernel.shape, spec)
    else:
        raise ValueError(
            f"load_state_dict converts Conv2D, DepthwiseConv2D, Dense and "
            f"BatchNormalization weights. Received: layer {layer.name!r} of "
            f"type {type(layer).__name__}; map it to None to keep its weights."
        )
    yield layer.kernel, f"{prefix}.weight", kernel_convert, kernel_shapes
    if getattr(layer, "bias", None) is not None:
        yield layer.bias, f"{prefix}.bias", _same, [tuple(layer.bias.shape)]


def _same(array):
    return array


def _oihw_to_hwio(array):
    return np.transpose(array, (2, 3, 1, 0))  # (out, in, h, w) -> (h, w, in, out)


def _depthwise(shape):
    height, width, channels, multiplier = shape

    def convert(array):  # (c * m, 1, h, w) -> (c, m, h, w) -> (h, w, c, m)
        array = array.reshape(channels, multiplier, height, width)
        return np.transpose(array, (2, 3, 0, 1))

    return convert, [(channels * multiplier, 1, height, width)]


def _dense(shape, spec):
    inputs, outputs = shape
    shapes = [(outputs, inputs), (outputs, inputs, 1, 1)]
    if not isinstance(spec, Flattened):
        return lambda array: array.reshape(outputs, inputs).T, shapes
    channels, height, width = spec.feature_shape

    def convert(array):  # rows in (c, h, w) order -> (h, w, c) order
        array = array.reshape(outputs, channels, height, width)
        return np.transpose(array, (2, 3, 1, 0)).reshape(inputs, outputs)

    return convert, shapes
