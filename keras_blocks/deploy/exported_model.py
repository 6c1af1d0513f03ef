"""An exported model run by its format's own runtime, with one call for all."""

import os

import numpy as np

RUNTIMES = {
    "tf_saved_model": "tf.saved_model.load",
    "litert": "the LiteRT interpreter",
    "onnx": "ONNX Runtime",
}


class ExportedModel:
    """A SavedModel folder, `.tflite` or `.onnx` file, loaded to run.

    Each format runs in its own runtime, not in Keras: a SavedModel with
    `tf.saved_model.load` (its `serve` endpoint), a `.tflite` file with the
    LiteRT interpreter (`ai_edge_litert`, or TensorFlow's `tf.lite` where it
    is not installed), an `.onnx` file with ONNX Runtime on the CPU. Calling
    the object runs a batch of NumPy inputs and returns NumPy outputs, so the
    same code compares or times them all. A LiteRT input is resized to each
    new batch size; SavedModel and ONNX files exported from a model whose
    batch size is free (`keras.Input` without `batch_size`) take any batch,
    from TensorFlow and PyTorch alike.

    Args:
        path: str or path-like. The folder or file `export_model` (or
            `model.export`) wrote; the format is told by it (a folder is a
            SavedModel).
        threads: int or None. Intra-op threads for LiteRT and ONNX Runtime;
            None leaves the runtime's default.

    Attributes:
        format: str. `"tf_saved_model"`, `"litert"` or `"onnx"`.
        path: str. The absolute path.
        size_bytes: int. Bytes on disk (a folder's files summed).
        input_shape: tuple. The input shape the runtime declares (None or a
            symbolic name for a free dimension).
        input_dtype: numpy.dtype. The input dtype the file declares (float32,
            or uint8 for a model of `keras.Input(..., dtype="uint8")`):
            inputs are converted to it before they are run.

    Raises:
        FileNotFoundError: nothing at `path`.
        ValueError: a file of another kind, or one its runtime cannot read.
        ImportError: the runtime is not installed.

    Examples:
    >>> import os, tempfile
    >>> import keras, numpy as np
    >>> from keras_blocks.deploy import ExportedModel, export_model
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> # ONNX from TensorFlow and PyTorch, a SavedModel from TensorFlow and JAX
    >>> onnx = keras.config.backend() != "jax"
    >>> format, name = ("onnx", "m.onnx") if onnx else ("tf_saved_model", "m")
    >>> path = export_model(model, os.path.join(tempfile.mkdtemp(), name), format)
    >>> exported = ExportedModel(path)
    >>> x = np.ones((3, 4), "float32")
    >>> expected = keras.ops.convert_to_numpy(model(x))
    >>> bool(np.allclose(exported(x), expected, atol=1e-6))
    True
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        self.path = os.path.abspath(os.fspath(path))
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"No exported model at {self.path}.")
        self.format = _format_of(self.path)
        self.size_bytes = _size(self.path)
        self.threads = threads
        try:
            self._run, self.input_shape, self.input_dtype = _LOADERS[self.format](
                self.path, threads
            )
        except ImportError:
            raise
        except Exception as error:
            reason = str(error).splitlines()[0] if str(error) else repr(error)
            raise ValueError(
                f"{RUNTIMES[self.format]} cannot read {self.path} as "
                f"{self.format}: {reason}"
            ) from error

    def __call__(self, inputs) -> np.ndarray | list[np.ndarray]:
        """Runs a batch (array-like, converted to `input_dtype`): returns an
        array, or a list of arrays in Keras' order for a model of several
        outputs (as `model(x)`)."""
        # Each runtime refuses another dtype than its file's.
        inputs = np.asarray(inputs, self.input_dtype)
        self._check_shape(inputs.shape)
        outputs = [np.asarray(y) for y in self._run(inputs)]
        return outputs[0] if len(outputs) == 1 else outputs

    def _check_shape(self, shape):
        """The declared shape, any batch size: LiteRT would otherwise resize
        its input to anything (a single image of 16 rows read as 16 images)."""
        declared = self.input_shape
        if len(shape) != len(declared) or any(
            isinstance(size, int) and size != actual
            for size, actual in zip(declared[1:], shape[1:], strict=True)
        ):
            layout = ", ".join(
                "batch" if i == 0 else str(d) for i, d in enumerate(declared)
            )
            raise ValueError(
                f"Invalid input shape for the exported model {self.path}. "
                f"Expected a batch of shape ({layout}). Received: shape={shape}"
            )

    def __repr__(self):
        return (
            f"ExportedModel(format={self.format!r}, path={self.path!r}, "
            f"size_bytes={self.size_bytes})"
        )


def _format_of(path):
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ValueError(
                f"{path} is a folder without saved_model.pb: not a SavedModel."
            )
        return "tf_saved_model"
    if path.endswith(".tflite"):
        return "litert"
    if path.endswith(".onnx"):
        return "onnx"
    raise ValueError(
        f"{path} is neither a SavedModel folder, a .tflite nor an .onnx file."
    )


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(path)
        for name in names
    )


def _load_saved_model(path, threads):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    if not hasattr(loaded, "serve"):
        raise ValueError("it has no `serve` endpoint (Keras' export writes one)")
    signature = loaded.serve.concrete_functions[0].structured_input_signature
    (spec,) = _one_input(tf.nest.flatten(signature[0]))

    def run(x):
        # `loaded` is kept alive by this closure: its functions need its
        # variables.
        outputs = loaded.serve(tf.constant(x))
        if isinstance(outputs, dict):  # output_0, output_1, ...: Keras' order
            outputs = [outputs[key] for key in sorted(outputs, key=_output_number)]
        elif not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return [y.numpy() for y in outputs]

    return run, tuple(spec.shape), np.dtype(spec.dtype.as_numpy_dtype)


def _load_litert(path, threads):
    try:
        from ai_edge_litert import interpreter as litert

        interpreter_class = litert.Interpreter
    except ImportError:
        try:
            import tensorflow as tf
        except ImportError:
            raise ImportError(
                "Running a .tflite file needs the LiteRT interpreter: "
                'pip install "keras-blocks[export]" (ai-edge-litert)'
            ) from None
        interpreter_class = tf.lite.Interpreter
    interpreter = interpreter_class(model_path=path, num_threads=threads)
    (input_detail,) = _one_input(interpreter.get_input_details())
    # The converter orders output tensors its own way; the signature names
    # them output_0, output_1, ... in Keras' order.
    try:
        signature = interpreter.get_signature_runner().get_output_details()
        output_indices = [
            signature[key]["index"] for key in sorted(signature, key=_output_number)
        ]
    except ValueError:  # a file without signatures: the tensors' order
        output_indices = [d["index"] for d in interpreter.get_output_details()]
    allocated = [None]

    def run(x):
        if allocated[0] != x.shape:
            interpreter.resize_tensor_input(input_detail["index"], x.shape)
            interpreter.allocate_tensors()
            allocated[0] = x.shape
        interpreter.set_tensor(input_detail["index"], x)
        interpreter.invoke()
        return [interpreter.get_tensor(index).copy() for index in output_indices]

    signature = input_detail.get("shape_signature", input_detail["shape"])
    shape = tuple(None if size < 0 else int(size) for size in signature)
    return run, shape, np.dtype(input_detail["dtype"])


def _load_onnx(path, threads):
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(
            "Running an .onnx file needs ONNX Runtime: "
            'pip install "keras-blocks[export]"'
        ) from None
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        path, options, providers=["CPUExecutionProvider"]
    )
    (input_spec,) = _one_input(session.get_inputs())

    def run(x):
        return session.run(None, {input_spec.name: x})  # in the graph's order

    return run, tuple(input_spec.shape), _onnx_dtype(input_spec.type)


def _onnx_dtype(type):
    """NumPy's dtype of ONNX Runtime's "tensor(uint8)"."""
    name = type.removeprefix("tensor(").removesuffix(")")
    return np.dtype({"float": "float32", "double": "float64"}.get(name, name))


def _one_input(inputs):
    """`inputs` if there is one; else says which the file takes."""
    if len(inputs) != 1:
        names = [i["name"] if isinstance(i, dict) else i.name for i in inputs]
        raise ValueError(
            f"it takes {len(inputs)} inputs ({', '.join(map(str, names))}); "
            "ExportedModel runs models of one input"
        )
    return inputs


def _output_number(name):
    """0 for "output_0": Keras' exporters name outputs by position."""
    digits = name.rpartition("_")[2]
    return (0, int(digits), name) if digits.isdigit() else (1, 0, name)


_LOADERS = {
    "tf_saved_model": _load_saved_model,
    "litert": _load_litert,
    "onnx": _load_onnx,
}
