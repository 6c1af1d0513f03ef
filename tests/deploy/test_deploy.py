"""`keras_blocks.deploy`: what export_model refuses, and that it writes whole.

The reference models' exports are checked in test_export_models.py, each
layer's in test_properties.py; here, the arguments a user gets wrong and the
files left behind when an export fails.
"""

import os
import re

import keras
import numpy as np
import pytest

from keras_blocks.deploy import FORMATS, ExportedModel, export_model

pytest.importorskip("onnxruntime")  # the export extra

BACKEND = keras.config.backend()
# What Keras 3.15 exports from each backend (ONNX from JAX goes through
# jax2onnx, which the export extra does not install).
EXPORTS = {"tensorflow": FORMATS, "torch": ("onnx",), "jax": ()}[BACKEND]
# An export (or its file) of each backend that exports: SavedModel, LiteRT and
# ONNX through tf2onnx from TensorFlow, ONNX through torch.onnx from PyTorch.
exports_here = pytest.mark.backends(
    "tensorflow",
    "torch",
    reason="the exporters of TensorFlow and PyTorch (JAX's ONNX goes through "
    "jax2onnx, which the export extra does not install)",
)
litert_only = pytest.mark.backends(
    "tensorflow", reason="Keras exports LiteRT from TensorFlow only"
)
# export_model's checks of its arguments and paths, made before any exporter
# runs: the same under every backend.
before_export = pytest.mark.backend_independent(
    reason="export_model checks its arguments and paths before any exporter runs"
)
FILE_NAMES = {"tf_saved_model": "model", "litert": "model.tflite", "onnx": "model.onnx"}


def small_model():
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def inputs():
    return np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")


@before_export
@pytest.mark.parametrize(
    "format, message",
    [
        ("tflite", "did you mean 'litert'"),
        ("saved_model", "did you mean 'tf_saved_model'"),
        ("ONNX ", "did you mean 'onnx'"),
        ("pb", "Expected one of ('tf_saved_model', 'litert', 'onnx')"),
        (None, "Received: format=None"),
    ],
)
def test_unknown_format(format, message, tmp_path):
    with pytest.raises(ValueError, match=re.escape(message)):
        export_model(small_model(), tmp_path / "model.x", format)
    assert not os.listdir(tmp_path)


@before_export
@pytest.mark.parametrize(
    "format, name, message",
    [
        ("litert", "model.onnx", "The litert format writes a '.tflite' file"),
        ("onnx", "model.tflite", "The onnx format writes a '.onnx' file"),
        ("tf_saved_model", "model.onnx", "A tf_saved_model is a folder"),
    ],
)
def test_a_suffix_of_another_format(format, name, message, tmp_path):
    with pytest.raises(ValueError, match=re.escape(message)):
        export_model(small_model(), tmp_path / name, format)


@before_export
@pytest.mark.parametrize("format", FORMATS)
def test_an_existing_path_is_kept(format, tmp_path):
    path = tmp_path / FILE_NAMES[format]
    if format == "tf_saved_model":
        path.mkdir()
        (path / "notes.txt").write_text("mine")
        kept = path / "notes.txt"
    else:
        path.write_text("mine")
        kept = path
    with pytest.raises(FileExistsError, match="never overwrites"):
        export_model(small_model(), path, format)
    assert kept.read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == [path.name]


@before_export
def test_a_missing_or_unwritable_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_model(small_model(), tmp_path / "no" / "model.onnx", "onnx")
    # A folder nobody may write into: chmod for a user; sysfs for root, whom
    # file modes do not stop.
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o500)
    if os.access(read_only, os.W_OK):
        read_only = "/sys"
    try:
        with pytest.raises(PermissionError, match="Cannot write"):
            export_model(small_model(), os.path.join(read_only, "m.onnx"), "onnx")
    finally:
        (tmp_path / "read_only").chmod(0o700)


@before_export
def test_int8_arguments(tmp_path):
    model = small_model()
    with pytest.raises(ValueError, match="representative_data=None"):
        export_model(model, tmp_path / "m.tflite", "litert", int8=True)
    with pytest.raises(ValueError, match="use format='litert'"):
        export_model(
            model, tmp_path / "m.onnx", "onnx", int8=True, representative_data=inputs()
        )
    with pytest.raises(ValueError, match="pass int8=True with it"):
        export_model(model, tmp_path / "m.tflite", "litert", representative_data=[1])
    with pytest.raises(ValueError, match="Received: int8='yes'"):
        export_model(model, tmp_path / "m.tflite", "litert", int8="yes")
    assert not os.listdir(tmp_path)


@litert_only
@pytest.mark.parametrize(
    "data, message",
    [
        # channels_first images for a channels_last model
        (np.zeros((4, 3, 6, 6), "float32"), "Received: a batch of shape (4, 3, 6, 6)"),
        # one image, not a batch of them
        (np.zeros((6, 6, 3), "float32"), "Received: a batch of shape (6, 6, 3)"),
        ([], "Expected at least one sample"),
        (3.0, "Received: representative_data of type float"),
    ],
)
def test_representative_data_of_another_shape(data, message, tmp_path):
    with pytest.raises(ValueError, match=re.escape(message)):
        export_model(
            small_model(),
            tmp_path / "m.tflite",
            "litert",
            int8=True,
            representative_data=data,
        )
    assert not os.listdir(tmp_path)


@pytest.mark.backends(
    "jax", "torch", reason="the message names the backend; TensorFlow exports all"
)
def test_a_format_the_backend_does_not_export(tmp_path):
    with pytest.raises(ValueError, match=f"not {BACKEND}: set KERAS_BACKEND"):
        export_model(small_model(), tmp_path / "m.tflite", "litert")


@before_export
def test_not_a_model(tmp_path):
    with pytest.raises(ValueError, match=re.escape("Expected a keras.Model")):
        export_model(keras.layers.Dense(2), tmp_path / "m.onnx", "onnx")
    assert not os.listdir(tmp_path)


@exports_here
def test_a_model_never_called(tmp_path):
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(ValueError, match="has never been called"):
        export_model(Subclassed(), tmp_path / "m.onnx", "onnx")
    assert not os.listdir(tmp_path)


@exports_here
def test_a_failed_export_leaves_nothing(tmp_path, monkeypatch):
    # The export writes part of its file, then fails (a full disk, a
    # converter error, Ctrl-C): neither the file nor the scratch folder stays.
    format = EXPORTS[0]  # through model.export (ONNX from TensorFlow is not)

    def fails_halfway(self, filepath, **kwargs):
        with open(filepath, "wb") as file:
            file.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "export", fails_halfway)
    with pytest.raises(KeyboardInterrupt):
        export_model(small_model(), tmp_path / FILE_NAMES[format], format)
    assert not os.listdir(tmp_path)


def another_small_model():
    model = small_model()  # other random weights
    model(inputs())
    return model


def two_inputs_model():
    first, second = keras.Input((6, 6, 3)), keras.Input((6, 6, 3))
    model = keras.Model([first, second], small_model()(first + second))
    model([inputs(), inputs()])
    return model


@exports_here
@pytest.mark.parametrize(
    "written, message",
    [
        (another_small_model, "computes other outputs than Keras on random inputs"),
        (two_inputs_model, "it takes 2 inputs"),
    ],
)
def test_a_file_its_runtime_refuses_is_not_written(
    written, message, tmp_path, monkeypatch
):
    # The converter writes a file, but not of this model: other weights, or
    # inputs that are not the model's (tf2onnx made Normalization's
    # statistics graph inputs; the file was kept). The file is run and
    # compared before it is moved into place.
    format = EXPORTS[0]  # through model.export
    export = keras.Model.export
    wrong = written()
    monkeypatch.setattr(
        keras.Model,
        "export",
        lambda self, path, **kwargs: export(wrong, path, **kwargs),
    )
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        export_model(small_model(), tmp_path / FILE_NAMES[format], format)
    assert str(error.value).endswith("No file was written.")
    assert not os.listdir(tmp_path)


@exports_here
def test_a_functional_model_never_called_exports(tmp_path):
    # Keras' own exporters refuse it ("has never called"); export_model calls
    # it once on zeros.
    model = small_model()
    path = export_model(model, tmp_path / "model.onnx", EXPORTS[-1])
    x = inputs()
    np.testing.assert_allclose(
        ExportedModel(path)(x), keras.ops.convert_to_numpy(model(x)), atol=1e-5
    )
    assert os.listdir(tmp_path) == ["model.onnx"]


@exports_here
@pytest.mark.parametrize("policy", ("mixed_float16", "mixed_bfloat16"))
def test_mixed_precision_exports_its_float32_twin(policy, tmp_path):
    keras.config.set_dtype_policy(policy)
    try:
        model = small_model()
    finally:
        keras.config.set_dtype_policy("float32")
    reference = small_model()
    reference.set_weights(model.get_weights())
    x = inputs()
    expected = keras.ops.convert_to_numpy(reference(x))
    for format in EXPORTS:
        path = export_model(model, tmp_path / FILE_NAMES[format], format)
        np.testing.assert_allclose(ExportedModel(path)(x), expected, atol=1e-5)


@pytest.mark.backend_independent(
    reason="ExportedModel reads files with their own runtimes, not Keras"
)
def test_exported_model_refuses_what_it_cannot_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="No exported model"):
        ExportedModel(tmp_path / "nothing.onnx")
    with pytest.raises(ValueError, match=re.escape("without saved_model.pb")):
        ExportedModel(tmp_path)
    (tmp_path / "model.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match="neither a SavedModel folder"):
        ExportedModel(tmp_path / "model.h5")
    (tmp_path / "broken.onnx").write_bytes(os.urandom(64))
    with pytest.raises(ValueError, match="ONNX Runtime cannot read"):
        ExportedModel(tmp_path / "broken.onnx")
    (tmp_path / "broken.tflite").write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match="the LiteRT interpreter cannot read"):
        ExportedModel(tmp_path / "broken.tflite")


@litert_only
@pytest.mark.parametrize("bad", (np.inf, np.nan))
def test_calibration_data_must_be_finite(bad, tmp_path):
    # One infinity crashed the process inside the converter; NaNs left layers
    # unquantized without a word.
    data = inputs()
    data[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match="Expected finite values"):
        export_model(
            small_model(),
            tmp_path / "m.tflite",
            "litert",
            int8=True,
            representative_data=data,
        )
    assert not os.listdir(tmp_path)


@litert_only
@pytest.mark.slow  # two int8 conversions: 4 s on busy cores
def test_calibration_data_as_fit_takes_it(tmp_path):
    # (x, y) arrays and a dataset of (x, y) batches, as for `fit`: the
    # labels are dropped. The int8 file is smaller than the float one would be.
    import tensorflow as tf

    x, y = inputs(), np.zeros(2, "int32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(1)
    model = small_model()
    for name, data in (("pair", (x, y)), ("dataset", dataset)):
        path = export_model(
            model,
            tmp_path / f"{name}.tflite",
            "litert",
            int8=True,
            representative_data=data,
        )
        assert ExportedModel(path)(x).shape == (2, 4)
    with pytest.raises(ValueError, match="Received: representative_data of type dict"):
        export_model(
            model,
            tmp_path / "dict.tflite",
            "litert",
            int8=True,
            representative_data={"input": x},
        )


@exports_here
def test_exact_gelu_exports_to_onnx(tmp_path):
    # From TensorFlow, tf2onnx writes exact GELU's Erfc as an operator ONNX
    # does not have (ONNX Runtime refused the file); export_model rewrites it.
    from keras_blocks.layers import ConvBNAct

    inputs_ = keras.Input((5, 5, 4))
    model = keras.Model(inputs_, ConvBNAct(6, 3, activation="gelu")(inputs_))
    x = 3 * np.random.default_rng(0).normal(size=(2, 5, 5, 4)).astype("float32")
    path = export_model(model, tmp_path / "gelu.onnx", "onnx")
    np.testing.assert_allclose(
        ExportedModel(path)(x), keras.ops.convert_to_numpy(model(x)), atol=1e-5
    )


@exports_here
@pytest.mark.slow  # each format's export and runtime: 4-6 s on busy cores
def test_several_outputs_come_back_in_keras_order(tmp_path):
    # LiteRT's converter orders output tensors its own way (the first was
    # Keras' second here); ExportedModel returns them as `model(x)` does.
    inputs_ = keras.Input((4,))
    hidden = keras.layers.Dense(3)(inputs_)
    heads = [keras.layers.Dense(5)(hidden), keras.layers.Dense(2)(hidden)]
    model = keras.Model(inputs_, [*heads, keras.layers.Dense(7)(inputs_)])
    x = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")
    expected = [keras.ops.convert_to_numpy(y) for y in model(x)]
    for format in EXPORTS:
        outputs = ExportedModel(
            export_model(model, tmp_path / FILE_NAMES[format], format)
        )(x)
        assert [y.shape for y in outputs] == [(2, 5), (2, 2), (2, 7)], format
        for got, want in zip(outputs, expected, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-5, err_msg=format)


@exports_here
def test_an_input_of_another_shape_is_refused(tmp_path):
    # LiteRT resized its input to anything: one 6x6x3 image ran as 6 images.
    model = small_model()
    for format in EXPORTS:
        exported = ExportedModel(
            export_model(model, tmp_path / FILE_NAMES[format], format)
        )
        assert exported(inputs()[:1]).shape == (1, 4)  # any batch size
        for shape in ((6, 6, 3), (2, 3, 6, 6), (2, 8, 8, 3)):
            with pytest.raises(ValueError, match=re.escape(f"Received: shape={shape}")):
                exported(np.zeros(shape, "float32"))


def uint8_model():
    """Images as a camera gives them: uint8, cast by the layer itself."""
    from keras_blocks.layers import ConvBNAct

    inputs_ = keras.Input((8, 8, 3), dtype="uint8")
    return keras.Model(inputs_, ConvBNAct(4, 3)(inputs_))


def uint8_images():
    return np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype("uint8")


@exports_here
@pytest.mark.slow  # each format's export and runtime: 4-6 s on busy cores
def test_a_uint8_input_runs_in_every_runtime(tmp_path):
    # ExportedModel turned every input into float32: ONNX Runtime refused it
    # ("Actual: (tensor(float)), expected: (tensor(uint8))"), though the file
    # was right. It feeds each runtime the dtype its file declares.
    model = uint8_model()
    x = uint8_images()
    expected = keras.ops.convert_to_numpy(model(x))
    for format in EXPORTS:
        exported = ExportedModel(
            export_model(model, tmp_path / FILE_NAMES[format], format)
        )
        assert exported.input_dtype == np.uint8, format
        np.testing.assert_allclose(exported(x), expected, atol=1e-4, err_msg=format)
        if format == "onnx":  # the file itself, in ONNX Runtime directly
            import onnxruntime

            session = onnxruntime.InferenceSession(str(exported.path))
            (name,) = [i.name for i in session.get_inputs()]
            np.testing.assert_allclose(
                session.run(None, {name: x})[0], expected, atol=1e-4
            )


@exports_here
def test_a_uint8_file_is_compared_before_it_is_written(tmp_path, monkeypatch):
    # export_model's check skipped inputs that are not float: a uint8 file of
    # other weights was written. It runs them on random integers in 0-255.
    format = EXPORTS[0]  # through model.export
    export = keras.Model.export
    wrong = uint8_model()  # other random weights
    wrong(uint8_images())  # Keras' exporters need a call
    monkeypatch.setattr(
        keras.Model,
        "export",
        lambda self, path, **kwargs: export(wrong, path, **kwargs),
    )
    with pytest.raises(ValueError, match="computes other outputs than Keras"):
        export_model(uint8_model(), tmp_path / FILE_NAMES[format], format)
    assert not os.listdir(tmp_path)
