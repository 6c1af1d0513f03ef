"""Exporting a Keras model for deployment: one file or folder, written whole."""

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from typing import Any

import keras
import numpy as np

from keras_blocks import _compat
from keras_blocks import _validation as check
from keras_blocks.layers._conv import convolutions_for_export

EXTRA = 'pip install "keras-blocks[export]"'


@dataclasses.dataclass(frozen=True)
class _FormatSpec:
    """What `export_model` knows of one format."""

    name: str  # Keras' name for it
    suffix: str | None  # its file's suffix; None: it is a folder
    aliases: tuple[str, ...]  # what users type for it instead
    # The backends Keras 3.15 exports it from, and the packages it needs on
    # each: {backend: {package: how to install it}}.
    backends: tuple[str, ...]
    requirements: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)


# One spec per format, in the order of FORMATS.
_FORMAT_SPECS = {
    spec.name: spec
    for spec in (
        _FormatSpec(
            "tf_saved_model",
            suffix=None,
            aliases=("saved_model", "savedmodel"),
            backends=("tensorflow", "jax"),
        ),
        _FormatSpec(
            "litert",
            suffix=".tflite",
            aliases=("tflite", "tf_lite"),
            backends=("tensorflow",),
        ),
        _FormatSpec(
            "onnx",
            suffix=".onnx",
            aliases=(),
            backends=("tensorflow", "jax", "torch"),
            requirements={
                "tensorflow": {"tf2onnx": EXTRA, "onnx": EXTRA},
                "jax": {"jax2onnx": "pip install jax2onnx (not in the export extra)"},
                "torch": {"onnx": EXTRA, "onnxscript": EXTRA},
            },
        ),
    )
}
FORMATS = tuple(_FORMAT_SPECS)  # Keras' names of the formats

# Samples of the representative data the int8 calibration reads at most.
CALIBRATION_SAMPLES = 256
# The largest difference from Keras, relative to the output scale, of a file
# that is written: a wrong graph differs by the scale itself; float32 files
# of the reference models differ by 1e-5 or less.
CHECK_TOLERANCE = 1e-3


def export_model(
    model: keras.Model,
    path: str | os.PathLike,
    format: str,
    *,
    int8: bool = False,
    representative_data: Any = None,
    verbose: bool = False,
) -> str:
    """Exports `model` for inference, whole or not at all.

    `model.export(path, format=...)` underneath, with what deploying needs
    around it:

    - the arguments are checked before any work: the format (with a hint for
      the names users type, `"tflite"` or `"saved_model"`), its file suffix,
      the backend, the packages it needs, and an output path that must not
      exist yet (nothing is overwritten);
    - the model is exported as `predict` runs it (`training=False`): the
      augmentation layers inside it (Keras' `RandomFlip` and the rest,
      `keras_blocks.augmentation`'s pipelines) are identity or a centre crop
      in the file, and every value that is not an input (weights,
      `Normalization`'s statistics, given or adapted) is a constant of it,
      so the file takes the model's inputs alone;
    - the file is written to a temporary name beside `path`, run in its
      format's runtime (`ExportedModel`) on random inputs of the model's
      shape and compared with Keras, and renamed into place only then: a
      failed, interrupted (Ctrl-C) or wrong export leaves nothing at `path`
      and no partial file beside it (a process killed outright can leave
      its hidden `.NAME.XXXX` folder);
    - a model trained under mixed precision (`"mixed_float16"`,
      `"mixed_bfloat16"`) exports as its float32 twin: the same variables
      (already float32) with float32 computation, which ONNX export needs and
      CPU runtimes run fastest;
    - LiteRT files hold TFLite's builtin operators only, so they run on the
      plain LiteRT runtime of a phone (Keras' default also admits TensorFlow
      operators, which need the Flex delegate); `int8=True` quantizes them
      after training, weights and activations, calibrated on
      `representative_data`, keeping float32 inputs and outputs.

    Grouped convolutions of `keras_blocks` layers export to every format
    (Keras' own grouped `Conv2D` does not export to ONNX from TensorFlow):
    as one ONNX `Conv` with `group`, and as one convolution per group in
    SavedModels and LiteRT files, which then run on every TensorFlow build
    and LiteRT delegate, whichever machine exported them.

    Args:
        model: keras.Model. A built model (called once, or functional).
        path: str or path-like. Where to write: a folder for
            `"tf_saved_model"`, a `.tflite` file for `"litert"`, an `.onnx`
            file for `"onnx"`. Must not exist; its parent folder must.
        format: str. `"tf_saved_model"`, `"litert"` or `"onnx"`, as Keras
            names them.
        int8: bool. Full-integer post-training quantization (LiteRT only).
        representative_data: array-like of input samples `(n, ...)` in the
            model's input layout, or an iterable of such batches. Required
            with `int8=True`: the ranges of the activations are measured on
            it (up to 256 samples, read one at a time). Use samples from the
            training data, preprocessed as the model sees them.
        verbose: bool. Keras' export messages.

    Returns:
        The path written, as a string.

    Raises:
        ValueError: an unknown format, a suffix that does not match it, a
            backend that cannot export it, an unbuilt model, `int8` without
            representative data or for another format than LiteRT,
            representative data of another shape than the model's input; a
            file its runtime cannot run as a model of the model's one input,
            or whose outputs differ from Keras' by more than 1e-3 of their
            scale (float formats), which is then not written.
        FileExistsError: `path` exists.
        FileNotFoundError: the parent folder of `path` does not exist.
        PermissionError: the parent folder cannot be written.
        ImportError: a package the format needs is missing (the `export`
            extra: `pip install "keras-blocks[export]"`).

    Examples:
    >>> import os, tempfile
    >>> import keras
    >>> from keras_blocks.deploy import ExportedModel, export_model
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> # ONNX from TensorFlow and PyTorch, a SavedModel from TensorFlow and JAX
    >>> onnx = keras.config.backend() != "jax"
    >>> format, name = ("onnx", "m.onnx") if onnx else ("tf_saved_model", "m")
    >>> path = export_model(model, os.path.join(tempfile.mkdtemp(), name), format)
    >>> ExportedModel(path).format == format
    True
    >>> export_model(model, path, format)
    Traceback (most recent call last):
      ...
    FileExistsError: ... exists: export_model never overwrites. ...
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Invalid value for argument `model`. Expected a keras.Model "
            f"(wrap a layer in one). Received: model={model!r}"
        )
    path = check_output_path(path, format)
    format = _format(format)
    check.boolean("int8", int8)
    check.boolean("verbose", verbose)
    if int8 and format != "litert":
        raise ValueError(
            "Invalid value for argument `int8`. Post-training int8 "
            "quantization is a LiteRT conversion: use format='litert'. "
            f"Received: int8=True, format='{format}'"
        )
    if int8 and representative_data is None:
        raise ValueError(
            "Invalid value for argument `representative_data`. int8 "
            "quantization measures the range of every activation on samples "
            "of the model's inputs: pass training images, preprocessed as the "
            "model sees them. Received: representative_data=None"
        )
    if not int8 and representative_data is not None:
        raise ValueError(
            "Invalid value for argument `representative_data`. It calibrates "
            "int8 quantization only: pass int8=True with it, or leave it out. "
            "Received: representative_data of type "
            f"{type(representative_data).__name__}, int8=False"
        )
    _check_backend(format)
    _check_built(model)
    model = _float32_model(model)
    _check_built(model)  # a float32 twin is new
    model = _inference_model(model)
    _check_built(model)  # so is the inference twin
    options = _litert_options(model, int8, representative_data)

    parent = os.path.dirname(path)
    scratch = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", dir=parent)
    try:
        partial = os.path.join(scratch, os.path.basename(path))
        with convolutions_for_export(format), _quiet_converters(verbose):
            if (
                format == "onnx"
                and keras.config.backend() == "tensorflow"
                and _input_structure(model) is not None
            ):
                _export_onnx_from_tensorflow(model, partial)
            else:
                model.export(partial, format=format, verbose=verbose, **options)
        if format == "onnx":
            _repair_and_check_onnx(partial)
        _check_in_runtime(model, partial, format, int8)
        _move_into_place(partial, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path


def _format(format):
    if isinstance(format, str) and format not in FORMATS:
        typed = format.strip().lower().replace("-", "_")
        aliased = (
            spec.name for spec in _FORMAT_SPECS.values() if typed in spec.aliases
        )
        meant = next(aliased, typed if typed in FORMATS else None)
        if meant:
            raise ValueError(
                f"Invalid value for argument `format`. Expected one of {FORMATS} "
                f"(Keras' names; did you mean '{meant}'?). "
                f"Received: format={format!r}"
            )
    return check.one_of("format", format, FORMATS)


def check_output_path(path: str | os.PathLike, format: str) -> str:
    """Checks `path` as `export_model` does before any work: returns it, absolute.

    A command that exports to a temporary file of its own (and names the
    user's path in its errors) checks the user's path with it first.

    Args:
        path: str or path-like. Where the export is to go.
        format: str. One of `FORMATS`.

    Returns:
        The absolute path, as a string.

    Raises:
        ValueError: an unknown format, or a suffix that does not match it.
        FileExistsError: `path` exists.
        FileNotFoundError: the parent folder of `path` does not exist.
        PermissionError: the parent folder cannot be written.

    Examples:
    >>> from keras_blocks.deploy import check_output_path
    >>> check_output_path("model.litert", "litert")
    Traceback (most recent call last):
      ...
    ValueError: Invalid value for argument `path`. The litert format writes ...
    """
    format = _format(format)
    try:
        path = os.path.abspath(os.fspath(path))
    except TypeError as error:
        raise ValueError(
            "Invalid value for argument `path`. Expected a str or path-like. "
            f"Received: path={path!r}"
        ) from error
    suffix = _FORMAT_SPECS[format].suffix
    if suffix and not path.endswith(suffix):
        raise ValueError(
            f"Invalid value for argument `path`. The {format} format writes a "
            f"'{suffix}' file. Received: path={path!r}"
        )
    files = tuple(spec.suffix for spec in _FORMAT_SPECS.values() if spec.suffix)
    if not suffix and path.endswith((*files, ".pb", ".h5", ".keras")):
        raise ValueError(
            "Invalid value for argument `path`. A tf_saved_model is a folder, "
            f"not a {os.path.splitext(path)[1]} file. Received: path={path!r}"
        )
    if os.path.lexists(path):
        raise FileExistsError(
            f"{path} exists: export_model never overwrites. Choose another "
            "path, or delete it first."
        )
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise FileNotFoundError(
            f"Cannot write {path}: {parent} "
            + (
                "is a file, not a folder."
                if os.path.exists(parent)
                else "does not exist."
            )
        )
    try:  # os.access() says yes to root on a read-only mount: try it
        os.rmdir(tempfile.mkdtemp(dir=parent))
    except OSError as error:
        raise PermissionError(
            f"Cannot write {path}: {parent} is not writable ({error.strerror})."
        ) from error
    return path


def _check_backend(format):
    spec, backend = _FORMAT_SPECS[format], keras.config.backend()
    if backend not in spec.backends:
        raise ValueError(
            f"Keras exports {format} from the {' or '.join(spec.backends)} "
            f"backend, not {backend}: set KERAS_BACKEND before importing "
            "Keras, load the model there (a .keras file loads on any "
            "backend), and export it."
        )
    import importlib.util

    for package, install in spec.requirements.get(backend, {}).items():
        if importlib.util.find_spec(package) is None:
            raise ImportError(
                f"Exporting {format} from {backend} needs the package "
                f"'{package}': {install}"
            )


def _check_built(model):
    """Checks that `model` can be exported: built, and called once.

    Keras' exporters read the input signature of the first call. A functional
    model is built with its inputs known but not yet called; it is called
    here once, on zeros of batch 1.
    """
    if _compat.has_been_called(model):
        return
    try:
        shapes = [tuple(x.shape) for x in model.inputs]
    except (AttributeError, TypeError):  # a subclassed model
        shapes = None
    if not model.built or not shapes or any(None in s[1:] for s in shapes):
        raise ValueError(
            f"The model '{model.name}' has never been called, so its input "
            "shape is unknown: call it once on a batch of inputs, then "
            "export it."
        )
    zeros = [np.zeros((1, *s[1:]), model.inputs[i].dtype) for i, s in enumerate(shapes)]
    model(zeros[0] if len(zeros) == 1 else zeros, training=False)


def _float32_model(model):
    """`model`, or its float32 twin if any layer computes in another dtype."""
    if all(layer.compute_dtype == "float32" for layer in _layers(model)):
        return model
    try:
        config = model.get_config()
    except NotImplementedError as error:
        raise ValueError(
            f"The model '{model.name}' computes in {model.compute_dtype} and "
            "has no get_config(), so no float32 twin can be made for export: "
            "build it again under keras.config.set_dtype_policy('float32'), "
            "copy the weights, and export that."
        ) from error
    twin = model.__class__.from_config(_float32_config(config))
    twin.set_weights(model.get_weights())
    return twin


def _layers(model):
    yield model
    yield from _compat.nested_layers(model, recursive=True)


def _float32_config(config):
    """`config` with every mixed-precision dtype policy made float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and isinstance(
            config.get("config"), dict
        ):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32_config(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_config(value) for value in config]
    if isinstance(config, str) and config.startswith("mixed_"):
        return "float32"
    return config


def _inference_model(model):
    """`model` as `predict` runs it: a functional twin calling it with
    `training=False`.

    Keras' SavedModel and ONNX exporters trace `model(x)` without `training`,
    and a layer called without it takes its own default: Keras' augmentation
    layers (`RandomFlip`, `RandomTranslation`, ...) default to training, so a
    model with its augmentation inside exported augmenting (and, to ONNX from
    TensorFlow, with random operators ONNX does not have). The twin shares
    the model's layers and weights. A subclassed model (no `model.input`) is
    exported as it is: its `call` passes `training` on itself.
    """
    structure = _input_structure(model)
    if structure is None:
        return model
    inputs = keras.tree.map_structure(
        lambda x: keras.Input(batch_shape=x.shape, dtype=x.dtype), structure
    )
    return keras.Model(inputs, model(inputs, training=False), name=model.name)


def _input_structure(model):
    """The model's inputs as it takes them (a tensor, a list or a dict of
    `keras.Input`s), or None for a subclassed model."""
    flat = getattr(model, "inputs", None)
    if not flat:
        return None
    # A Sequential model has no `input` until called symbolically.
    return flat[0] if len(flat) == 1 else model.input


def _export_onnx_from_tensorflow(model, path):
    """Keras' ONNX export from TensorFlow (tf2onnx), every capture a constant.

    Keras hands tf2onnx 1.17's `convert.from_function` the model's traced
    function, and tf2onnx makes every non-resource input of the traced graph
    an input of the ONNX graph, the tensors the function captures by value
    included: the statistics of `keras.layers.Normalization`, given or
    adapted (tensors, not variables), became two more graph inputs without
    their values. Here the function is frozen first (its variables and
    captured tensors become constants) and converted with the model's own
    inputs only, as tf2onnx's `from_keras` does.
    """
    import tensorflow as tf
    import tf2onnx

    structure = _input_structure(model)
    flat = keras.tree.flatten(structure)
    specs = [tf.TensorSpec(x.shape, x.dtype, name=x.name) for x in flat]

    def serve(*tensors):
        return model(keras.tree.pack_sequence_as(structure, tensors), training=False)

    function = tf.function(serve, input_signature=specs, autograph=False)
    concrete = function.get_concrete_function()
    captured = {t.name for t in concrete.graph.internal_captures}
    inputs = [t.name for t in concrete.inputs if t.name not in captured]
    outputs = [t.name for t in concrete.outputs]
    # Variables and by-value captures become Const nodes here.
    graph_def = tf2onnx.tf_loader.from_function(concrete, inputs, outputs)
    tf2onnx.convert.from_graph_def(
        graph_def,
        name=model.name,
        input_names=inputs,
        output_names=outputs,
        tensors_to_rename=dict(zip(inputs, (s.name for s in specs), strict=True)),
        output_path=path,
    )


def _check_in_runtime(model, path, format, int8):
    """Runs the file in its format's runtime and compares it with Keras.

    Before the file is moved into place: a file its runtime cannot run as a
    model of one input, or that computes other outputs, is never written.
    The inputs are random, of the model's input shape and dtype (`_random_inputs`);
    an int8 file is checked for shapes and finite outputs only. A model of
    several inputs is not checked (`ExportedModel` runs one input); one of
    inputs of unknown size is loaded, not run.
    """
    from keras_blocks.deploy.exported_model import ExportedModel

    try:
        shapes = [tuple(x.shape) for x in model.inputs]
    except (AttributeError, TypeError, ValueError):  # a subclassed model
        shapes = None
    if shapes is not None and len(shapes) != 1:
        return
    try:
        exported = ExportedModel(path)
    except ValueError as error:
        raise ValueError(f"{error}. No file was written.") from error
    if shapes is None or None in shapes[0][1:]:
        return
    x = _random_inputs((2, *shapes[0][1:]), model.inputs[0].dtype)
    expected = keras.tree.flatten(model(x, training=False))
    actual = exported(x)
    actual = actual if isinstance(actual, list) else [actual]
    for want, got in zip(expected, actual, strict=True):
        want = keras.ops.convert_to_numpy(want)
        if got.shape != want.shape or not np.isfinite(got).all():
            raise ValueError(
                f"The exported {format} file gives outputs of shape {got.shape}"
                f"{'' if np.isfinite(got).all() else ', not all finite,'} where "
                f"Keras gives {want.shape}. No file was written."
            )
        scale = max(1.0, float(np.abs(want).max()))
        difference = float(np.abs(got - want).max())
        if not int8 and difference > CHECK_TOLERANCE * scale:
            raise ValueError(
                f"The exported {format} file computes other outputs than Keras "
                f"on random inputs (largest difference {difference:.3g}, "
                f"outputs up to {scale:.3g}). No file was written."
            )


def _random_inputs(shape, dtype):
    """Random inputs in the image range of `dtype`: uniform in [0, 1] for a
    float, integers in 0-255 for uint8 (and the part of it an integer dtype
    holds: 0-127 for int8), 0 or 1 for bool."""
    rng = np.random.default_rng(0)
    dtype = keras.backend.standardize_dtype(dtype)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.startswith(("int", "uint")):
        high = min(255, np.iinfo(dtype).max)
        return rng.integers(0, high, shape, endpoint=True).astype(dtype)
    # float32 for any float: NumPy has no bfloat16; the runtime casts.
    return rng.uniform(0, 1, shape).astype("float32")


def _litert_options(model, int8, representative_data):
    """The TFLite converter's settings, through Keras' export kwargs."""
    if keras.config.backend() != "tensorflow":
        return {}
    import tensorflow as tf

    if not int8:
        # Builtin operators only: a model that needs TensorFlow's (Flex)
        # fails to convert, with the operators named, instead of exporting a
        # file that the plain LiteRT runtime cannot run.
        return {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    samples = _calibration_samples(model, representative_data)
    return {
        "optimizations": [tf.lite.Optimize.DEFAULT],
        "representative_dataset": lambda: ([sample[None]] for sample in samples),
        "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
    }


def _calibration_samples(model, data):
    """Up to CALIBRATION_SAMPLES float32 samples, checked against the input.

    Takes what Keras' `fit` takes for inputs: an array `x`, a tuple `(x, y)`
    of arrays, or an iterable (a `tf.data.Dataset`, a generator) of `x` or
    `(x, y)` batches; labels are dropped.
    """
    try:
        expected = tuple(model.inputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError):  # a subclassed model
        expected = None
    if isinstance(data, tuple) and data and hasattr(data[0], "shape"):
        data = data[0]  # (x, y) or (x, y, sample_weight) arrays
    batches = [data] if hasattr(data, "shape") else data
    if not isinstance(batches, Iterable) or isinstance(batches, (str, bytes, dict)):
        raise ValueError(
            "Invalid value for argument `representative_data`. Expected an "
            "array of input samples, (x, y), or an iterable of x or (x, y) "
            f"batches. Received: representative_data of type {type(data).__name__}"
        )
    samples = []
    for batch in batches:
        if isinstance(batch, (tuple, list)) and batch and hasattr(batch[0], "shape"):
            batch = batch[0]  # an (x, y) batch
        try:
            batch = np.asarray(batch, dtype="float32")
        except (TypeError, ValueError) as error:
            raise ValueError(
                "Invalid value for argument `representative_data`. Expected "
                "batches of numbers in the model's input shape. Received: a "
                f"batch of type {type(batch).__name__} ({error})"
            ) from error
        if expected is not None and (
            batch.ndim != len(expected) + 1
            or any(
                size is not None and size != actual
                for size, actual in zip(expected, batch.shape[1:], strict=True)
            )
        ):
            raise ValueError(
                "Invalid value for argument `representative_data`. Expected "
                f"samples of the model's input shape (n, {expected}, batched). "
                f"Received: a batch of shape {batch.shape}"
            )
        if not np.isfinite(batch).all():
            # The converter crashes the process on an infinity ("scale out of
            # expressed type range") and leaves layers in float on NaNs.
            raise ValueError(
                "Invalid value for argument `representative_data`. Expected "
                "finite values. Received: a batch with "
                f"{int(np.isnan(batch).sum())} NaN and "
                f"{int(np.isinf(batch).sum())} infinite values"
            )
        samples.extend(batch[: CALIBRATION_SAMPLES - len(samples)])
        if len(samples) >= CALIBRATION_SAMPLES:
            break
    if not samples:
        raise ValueError(
            "Invalid value for argument `representative_data`. Expected at "
            "least one sample. Received: no samples"
        )
    return samples


@contextlib.contextmanager
def _quiet_converters(verbose):
    """tf2onnx logs ERROR for the Erfc it cannot convert, which
    `_repair_and_check_onnx` repairs; what is wrong with a file is checked
    and raised after the export, so its log is kept for `verbose`."""
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    if not verbose:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            if not verbose:  # Keras 3.15's tf2onnx patch, on NumPy 2
                warnings.filterwarnings("ignore", "In the future `np.object`")
            yield
    finally:
        logger.setLevel(level)


def _repair_and_check_onnx(path):
    """Makes tf2onnx's graph valid ONNX, and checks it with ONNX's checker.

    tf2onnx 1.17 writes TensorFlow's `Erfc` (exact GELU) as an `Erfc` node,
    an operator ONNX does not have, so ONNX Runtime refuses the file; it
    becomes `1 - Erf(x)`, the same function (ONNX has `Erf`).
    """
    import onnx

    model = onnx.load(path)
    if _replace_erfc(model.graph):
        onnx.save(model, path)
    try:
        onnx.checker.check_model(path)
    except onnx.checker.ValidationError as error:
        reason = str(error).strip().splitlines()[0]
        hint = ""
        if "PartitionedCall" in reason:
            hint = (
                " A layer runs inside a nested compiled TensorFlow function, "
                "which tf2onnx leaves as a call: Keras' grouped Conv2D does "
                "(use keras_blocks.layers.ConvBNAct(..., batch_norm=False, "
                "activation=None) instead)."
            )
        raise ValueError(
            "The exported ONNX graph is not valid ONNX, so no file was "
            f"written: {reason}.{hint}"
        ) from error


def _replace_erfc(graph):
    """Rewrites each `Erfc(x)` node of `graph` as `1 - Erf(x)`; returns how many."""
    from onnx import helper, numpy_helper

    nodes, replaced = [], 0
    for node in graph.node:
        if node.op_type != "Erfc" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        replaced += 1
        one, erf = f"{node.name}/one", f"{node.name}/erf"
        graph.initializer.append(
            numpy_helper.from_array(np.array(1.0, dtype="float32"), one)
        )
        nodes.append(helper.make_node("Erf", list(node.input), [erf], name=erf))
        nodes.append(
            helper.make_node("Sub", [one, erf], list(node.output), name=node.name)
        )
    if replaced:
        del graph.node[:]
        graph.node.extend(nodes)
    return replaced


def _move_into_place(partial, path):
    """Renames the finished export to `path`, unless something appeared there."""
    if os.path.isdir(partial):
        # rename() refuses a non-empty folder, but would replace an empty one.
        if os.path.lexists(path):
            raise FileExistsError(f"{path} appeared during the export: kept.")
        os.rename(partial, path)
    else:
        os.link(partial, path)  # fails if `path` exists: never replaces it
