"""examples/export.py in-process: each format written, read back by its runtime
and compared with Keras (TensorFlow; ONNX from PyTorch too), and the bad input
a user meets, refused with exit status 2 and nothing written."""

import re

import keras
import numpy as np
import pytest

from examples import export
from keras_blocks.models import get_model
from tests.models.model_checks import image_shape, randomize

MODEL = "cifar10_cnn"  # the smallest reference model: dropout, BN, dense head
SIZE = 16
BACKEND = keras.config.backend()
# What each backend exports (JAX: ONNX through jax2onnx, not in the export
# extra; its SavedModel through jax2tf, not checked here).
ONNX_BACKENDS = pytest.mark.backends(
    "tensorflow",
    "torch",
    reason="ONNX exports through tf2onnx from TensorFlow, torch.onnx from PyTorch",
)
TENSORFLOW_ONLY = pytest.mark.backends(
    "tensorflow", reason="Keras exports SavedModel and LiteRT from TensorFlow only"
)
# (format, weights file kind): each format on the backends that export it.
CASES = [
    pytest.param("onnx", "weights.h5", marks=ONNX_BACKENDS),
    pytest.param("litert", "weights.h5", marks=TENSORFLOW_ONLY),
    pytest.param("tf_saved_model", "keras", marks=TENSORFLOW_ONLY),
]
# The command's refusals of its arguments and of the paths it is given, made
# before any exporter runs.
REFUSAL = pytest.mark.backend_independent(
    reason="the command's refusals come before any export: argparse, its own "
    "checks of arguments and paths, and Keras' weight loading (the same file "
    "format under every backend)"
)


def weights_file(folder, kind):
    """A model of examples/train.py with every weight random, saved as a user
    of the repository has it: `.weights.h5` (save_weights) or `.keras`."""
    model = get_model(MODEL, input_shape=image_shape(SIZE), classes=export.CLASSES)
    randomize(model)
    path = folder / f"trained.{kind}"
    if kind == "keras":
        model.save(path)
    else:
        model.save_weights(path)
    return path, model


def number(pattern, text):
    return float(re.search(pattern, text).group(1))


@pytest.mark.slow
@pytest.mark.parametrize("format, kind", CASES)
def test_each_format_matches_keras(tmp_path, monkeypatch, capsys, format, kind):
    for package in ("onnxruntime", "tf2onnx" if BACKEND == "tensorflow" else "onnx"):
        pytest.importorskip(package)
    weights, trained = weights_file(tmp_path, kind)
    monkeypatch.chdir(tmp_path)
    model_args = ["--model", MODEL] if kind != "keras" else []
    figures = export.main([*model_args, "--weights", str(weights), "--format", format])
    out = capsys.readouterr().out

    # The default output, beside nothing else, of the size printed.
    output = tmp_path / f"{MODEL}{export.ENDINGS[format]}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [weights.name, output.name]
    )
    printed_size = number(r"MB \(([\d,]+) bytes\)", out.replace(",", ""))
    assert printed_size == figures["size_bytes"] > 10_000
    difference = number(r"largest \|difference\| ([-\d.e+]+)", out)
    assert difference == pytest.approx(
        figures["largest_difference"], rel=1e-2, abs=1e-30
    )
    assert difference <= 1e-5 * max(1.0, figures["output_scale"])
    assert "top-1 agreement 100.0%" in out
    assert f"on {export.COMPARED} digits test images" in out
    keras_ms, exported_ms = (
        number(rf"{name} ([\d.]+) ms", out) for name in ("Keras", format)
    )
    assert keras_ms > 0 and exported_ms > 0

    # The file computes what the trained model does (its weights were
    # loaded, not a fresh model's exported).
    reloaded = export.ExportedModel(output)
    x = np.random.default_rng(0).uniform(0, 1, (2, SIZE, SIZE, 3)).astype("float32")
    if keras.config.image_data_format() == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    expected = keras.ops.convert_to_numpy(trained(x, training=False))
    assert np.abs(reloaded(x) - expected).max() <= 1e-5 * max(
        1.0, np.abs(expected).max()
    )


@TENSORFLOW_ONLY
@pytest.mark.slow
def test_int8_is_compared_by_top1_agreement(tmp_path, capsys):
    pytest.importorskip("sklearn")  # the digits it calibrates on
    weights, _ = weights_file(tmp_path, "weights.h5")
    output = tmp_path / "int8.tflite"
    figures = export.main(
        [
            "--model",
            MODEL,
            "--weights",
            str(weights),
            "--format",
            "litert",
            "--int8",
            "--output",
            str(output),
        ]
    )
    out = capsys.readouterr().out
    assert "not expected within 1e-5" in out
    assert "calibrated on 256 digits training images" in out
    agreement = number(r"top-1 agreement ([\d.]+)%", out) / 100
    assert agreement == pytest.approx(figures["agreement"], abs=1e-3)
    assert agreement >= 0.8
    # int8 weights: about a quarter of the float32 ones.
    assert figures["size_bytes"] == output.stat().st_size < 0.5 * weights.stat().st_size


def refused(capsys, argv):
    """The stderr line of a refusal, which must be exit status 2."""
    with pytest.raises(SystemExit) as error:
        export.main(argv)
    assert error.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


@REFUSAL
def test_bad_input_is_refused_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    weights, _ = weights_file(tmp_path, "weights.h5")
    base = ["--weights", str(weights)]

    message = refused(capsys, ["--model", "cifar10cnn", *base, "--format", "onnx"])
    assert "invalid choice: 'cifar10cnn' (did you mean cifar10_cnn" in message
    message = refused(capsys, ["--model", MODEL, *base, "--format", "onx"])
    assert (
        "invalid choice: 'onx' (did you mean onnx? choose from tf_saved_model, "
        "litert, onnx)" in message
    )
    message = refused(capsys, ["--model", MODEL, *base, "--format", "onnx", "--int8"])
    assert "--int8: post-training int8 quantization is a LiteRT conversion" in message
    message = refused(capsys, ["--model", MODEL, "--format", "onnx"])
    assert "an export of random weights is almost always a mistake" in message
    message = refused(
        capsys,
        ["--model", MODEL, "--weights", "missing.weights.h5", "--format", "onnx"],
    )
    assert message == "export.py: error: --weights: no such file: missing.weights.h5"
    assert sorted(p.name for p in tmp_path.iterdir()) == [weights.name]

    existing = tmp_path / "taken.onnx"
    existing.write_text("kept")
    message = refused(
        capsys, ["--model", MODEL, *base, "--format", "onnx", "--output", str(existing)]
    )
    assert message == (
        f"export.py: error: {existing} exists: the export never overwrites. Pass "
        "another --output, or delete it first."
    )
    assert existing.read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [weights.name, existing.name]
    )


@REFUSAL
def test_weights_of_another_model_are_refused(tmp_path, monkeypatch, capsys):
    # Keras' loader refuses the file (16 s to do so under JAX, seconds under
    # TensorFlow and PyTorch); the command says what to pass.
    monkeypatch.chdir(tmp_path)
    weights, _ = weights_file(tmp_path, "weights.h5")
    message = refused(
        capsys,
        ["--model", "cifar_resnet20", "--weights", str(weights), "--format", "onnx"],
    )
    assert message.startswith(
        f"export.py: error: Cannot load {weights} into cifar_resnet20"
    )
    assert "Pass the --model, --image-size and --classes it was built with." in message
    assert sorted(p.name for p in tmp_path.iterdir()) == [weights.name]


@REFUSAL
def test_a_keras_file_of_another_model_is_refused(tmp_path, capsys):
    path, _ = weights_file(tmp_path, "keras")
    message = refused(
        capsys,
        ["--model", "cifar_resnet20", "--weights", str(path), "--format", "onnx"],
    )
    assert message == (
        f"export.py: error: {path} holds the model '{MODEL}', not cifar_resnet20: pass "
        f"--model {MODEL}, or leave --model out."
    )


@REFUSAL
@pytest.mark.parametrize(
    "typed, meant", [("tflite", "litert"), ("saved_model", "tf_saved_model")]
)
def test_formats_are_the_librarys(typed, meant, tmp_path, capsys):
    # The command took `tflite` and `saved_model`, which export_model refuses:
    # both refuse them now, and name the library's format.
    from keras_blocks.deploy import FORMATS, export_model

    assert export.FORMATS == FORMATS
    message = refused(capsys, ["--random-weights", "--model", MODEL, "--format", typed])
    assert f"invalid choice: '{typed}' (did you mean {meant}? choose from " in message
    with pytest.raises(ValueError, match=f"did you mean '{meant}'"):
        export_model(keras.Sequential([keras.Input((2,))]), tmp_path / "m", typed)


def preprocessing_model(folder, channels):
    """A .keras file of a small model with its normalization inside."""
    inputs = keras.Input((SIZE, SIZE, channels))
    x = keras.layers.Normalization(
        axis=-1, mean=[0.5] * channels, variance=[0.25] * channels
    )(inputs)
    x = keras.layers.Conv2D(4, 3, data_format="channels_last")(x)
    x = keras.layers.GlobalAveragePooling2D(data_format="channels_last")(x)
    model = keras.Model(inputs, keras.layers.Dense(export.CLASSES)(x), name="small")
    path = folder / "small.keras"
    model.save(path)
    return path, model


@pytest.mark.backends(
    "tensorflow", reason="tf2onnx made Normalization's statistics graph inputs"
)
@pytest.mark.slow
@pytest.mark.parametrize("channels, source", [(1, "digits"), (4, "random")])
def test_a_model_of_other_channels_with_normalization_inside(
    channels, source, tmp_path, monkeypatch, capsys
):
    # A 1-channel model crashed comparing with 3-channel digits after the
    # file was written; Normalization's statistics were inputs of the file.
    pytest.importorskip("sklearn")  # the digits
    import onnxruntime

    path, model = preprocessing_model(tmp_path, channels)
    monkeypatch.chdir(tmp_path)
    export.main(["--weights", str(path), "--format", "onnx"])
    out = capsys.readouterr().out
    assert f"Wrote {tmp_path / 'small.onnx'} (onnx)" in out
    assert f"on {export.COMPARED} {source} test images" in out
    if source == "random":
        assert "(random images in [0, 1]: the digits are grey or RGB, and the " in out
    assert number(r"largest \|difference\| ([-\d.e+]+)", out) <= 1e-5
    session = onnxruntime.InferenceSession(str(tmp_path / "small.onnx"))
    (name,) = [i.name for i in session.get_inputs()]
    x = np.random.default_rng(0).uniform(0, 1, (2, SIZE, SIZE, channels))
    x = x.astype("float32")
    np.testing.assert_allclose(
        session.run(None, {name: x})[0],
        keras.ops.convert_to_numpy(model(x)),
        atol=1e-5,
    )


@ONNX_BACKENDS
@pytest.mark.slow
@pytest.mark.parametrize(
    "error", [ValueError, RuntimeError], ids=["ValueError", "RuntimeError"]
)
def test_a_failed_comparison_writes_nothing(error, tmp_path, monkeypatch, capsys):
    # The export succeeds; running it back fails: nothing stays, and the
    # failure is one line, exit status 2, whatever the runtime raises (ONNX
    # Runtime's InvalidArgument went out as a traceback, exit status 1).
    pytest.importorskip("onnxruntime")
    weights, _ = weights_file(tmp_path, "weights.h5")

    class Fails(export.ExportedModel):
        def __call__(self, inputs):
            raise error("the runtime failed")

    monkeypatch.setattr(export, "ExportedModel", Fails)
    message = refused(
        capsys,
        [
            "--model",
            MODEL,
            "--weights",
            str(weights),
            "--format",
            "onnx",
            "--output",
            str(tmp_path / "m.onnx"),
        ],
    )
    assert message == "export.py: error: the runtime failed"
    assert sorted(p.name for p in tmp_path.iterdir()) == [weights.name]


@pytest.mark.slow
@pytest.mark.parametrize("format, kind", CASES)
def test_a_uint8_model_is_compared_on_uint8_images(
    tmp_path, monkeypatch, capsys, format, kind
):
    # A model of uint8 inputs crashed after its export (ExportedModel fed
    # ONNX Runtime float32, exit status 1 with a traceback): it is compared
    # on the digits as uint8 images in 0-255, its own dtype.
    pytest.importorskip("sklearn")  # the digits
    pytest.importorskip("onnxruntime")
    from keras_blocks.layers import ConvBNAct

    inputs = keras.Input((SIZE, SIZE, 3), dtype="uint8")
    x = ConvBNAct(4, 3, data_format="channels_last")(inputs)
    x = keras.layers.GlobalAveragePooling2D(data_format="channels_last")(x)
    model = keras.Model(inputs, keras.layers.Dense(export.CLASSES)(x), name="u8")
    randomize(model)
    model.save(tmp_path / "u8.keras")
    monkeypatch.chdir(tmp_path)
    output = tmp_path / f"u8cli{export.ENDINGS[format]}"
    figures = export.main(
        ["--weights", "u8.keras", "--format", format, "--output", str(output)]
    )
    out = capsys.readouterr().out
    assert f"on {export.COMPARED} digits test images" in out
    assert figures["largest_difference"] <= 1e-4 * max(1.0, figures["output_scale"])
    assert "top-1 agreement 100.0%" in out
    x_test, _, _, _ = export.images(model, None)
    assert x_test.dtype == np.uint8 and x_test.max() > 128
    np.testing.assert_allclose(
        export.ExportedModel(output)(x_test[:4]),
        keras.ops.convert_to_numpy(model(x_test[:4])),
        atol=1e-4,
    )


@REFUSAL
def test_an_output_of_another_suffix_names_the_users_path(tmp_path, capsys):
    # The library's suffix check ran on the command's temporary file: the
    # message named ".../.cli.litert.XXXX/cli.litert", not the user's path.
    output = tmp_path / "cli.litert"
    message = refused(
        capsys,
        [
            "--random-weights",
            "--model",
            MODEL,
            "--format",
            "litert",
            "--output",
            str(output),
        ],
    )
    assert message == (
        "export.py: error: Invalid value for argument `path`. The litert format "
        f"writes a '.tflite' file. Received: path={str(output)!r}"
    )
    assert not list(tmp_path.iterdir())


@REFUSAL
def test_a_folder_for_weights_says_what_to_pass(tmp_path, capsys):
    # A checkpoint folder got "no such file" though it exists.
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    message = refused(
        capsys, ["--model", MODEL, "--weights", str(folder), "--format", "onnx"]
    )
    assert message.startswith(
        f"export.py: error: --weights: {folder} is a folder: pass a .keras or "
        ".weights.h5 file."
    )
    assert 'model.save_weights("model.weights.h5")' in message
    # A checkpoint of JAX or PyTorch holds the file to pass.
    (folder / "model.weights.h5").write_bytes(b"")
    message = refused(
        capsys, ["--model", MODEL, "--weights", str(folder), "--format", "onnx"]
    )
    assert message.endswith(f"file, here {folder / 'model.weights.h5'} (the model's).")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]
