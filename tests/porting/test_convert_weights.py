"""examples/convert_weights.py: torchvision's and timm's files (their networks
at random weights) converted to Keras weights files that give the networks'
logits on every backend, and the inputs it refuses, writing nothing."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from examples import convert_weights
from keras_blocks.models import resnet, vgg
from tests import ROOT
from tests.models.model_checks import kernels
from tests.porting.torch_references import (
    assert_logits_close,
    randomized,
    save_state_dict,
    timm,
    torch_outputs,
    torchvision,
)

SIZE = 32  # any size: the file was converted at 224
CONVERSION_OUTPUT = []  # what the fixture's conversion printed


def images(count=2, seed=0):
    x = np.random.default_rng(seed).normal(size=(count, SIZE, SIZE, 3))
    return x.astype("float32")


# The command's refusals (model, source, output and input checks, and the
# loader's, which checks the whole file before it assigns anything) come
# before it converts anything, or before it writes: the same under any
# backend. The conversion itself (build, load, save_weights) and the logits of
# the converted file run on every backend (test_resnet18_from_torchvision).
REFUSAL = pytest.mark.backend_independent(
    reason="the command refuses before it converts or writes anything"
)


@pytest.fixture(scope="module")
def resnet18_pth(tmp_path_factory):
    """A randomized torchvision ResNet-18's .pth and its logits on `images()`
    (PyTorch only: no Keras model)."""
    directory = tmp_path_factory.mktemp("resnet18_pth")
    net = randomized(torchvision().models.resnet18())
    pth, _ = save_state_dict(net, directory, "resnet18")
    return Path(pth), torch_outputs(net, images())


@pytest.fixture(scope="module")
def resnet18_files(resnet18_pth, tmp_path_factory):
    """`resnet18_pth` and the file converted from it (by the command line)."""
    pth, theirs = resnet18_pth
    output = tmp_path_factory.mktemp("resnet18") / "resnet18.weights.h5"
    args = ["--model", "resnet18", "--source", "torchvision", "--input", str(pth)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        convert_weights.main([*args, "--output", str(output)])
    CONVERSION_OUTPUT.append(printed.getvalue())
    return pth, theirs, output


def logits_of(name, path, **options):
    """Our model `name` at SIZE with the converted file, as logits."""
    with kernels("zeros"):  # every weight is loaded below
        model = resnet.MODELS[name](
            input_shape=(SIZE, SIZE, 3), classifier_activation=None, **options
        )
    convert_weights.load_converted(model, path, name)
    return keras.ops.convert_to_numpy(model(images(), training=False))


@pytest.mark.slow
def test_resnet18_from_torchvision(resnet18_files):
    _, theirs, output = resnet18_files
    out = CONVERSION_OUTPUT[0]
    assert "resnet18 from torchvision's resnet18.pth, built at 224x224" in out
    assert "Loaded 102 tensors (11,699,112 values) into 41 layers." in out
    assert "Skipped 20 num_batches_tracked buffers." in out
    assert f"Wrote {output} in " in out
    # Converted at 224x224, used at 32x32: the logits are torchvision's.
    assert_logits_close(logits_of("resnet18", output), theirs)
    metadata = convert_weights.read_metadata(output)
    assert metadata["classes"] == 1000 and metadata["image_size"] == [224, 224]
    assert metadata["mean"] == [0.485, 0.456, 0.406]
    assert metadata["std"] == [0.229, 0.224, 0.225]
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
@pytest.mark.backends(
    "tensorflow",
    reason="one subprocess (~25 s), converting on TensorFlow and loading on "
    "PyTorch; each pass loads on the backend that converted",
)
def test_the_file_loads_on_another_backend(resnet18_files, tmp_path):
    # Converted on TensorFlow, loaded on PyTorch; the other tests load on the
    # backend that converted, in each CI run.
    _, theirs, output = resnet18_files
    other = "torch"
    expected = tmp_path / "theirs.npy"
    np.save(expected, theirs)
    child = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import numpy as np
import keras
from tests.porting.test_convert_weights import logits_of
from tests.porting.torch_references import assert_logits_close
print(keras.config.backend(), assert_logits_close(
    logits_of("resnet18", {str(output)!r}), np.load({str(expected)!r})))
"""
    env = {**os.environ, "KERAS_BACKEND": other, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", child],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[0] == other


@pytest.mark.slow
@pytest.mark.backends(
    "tensorflow",
    reason="the loader is the same on every backend (ResNet-18 checks it there)",
)
def test_se_resnet50_from_timm_safetensors(tmp_path, capsys):
    net = randomized(timm().create_model("seresnet50"))
    _, safetensors = save_state_dict(net, tmp_path, "seresnet50")
    output = tmp_path / "se_resnet50.weights.h5"
    convert_weights.main(
        ["--model", "se_resnet50", "--input", safetensors, "--output", str(output)]
    )  # the only source of se_resnet50: timm
    assert "se_resnet50 from timm's seresnet50.safetensors" in capsys.readouterr().out
    assert_logits_close(logits_of("se_resnet50", output), torch_outputs(net, images()))


@pytest.mark.backend_independent(reason="the table of files, printed: no Keras")
def test_list_names_every_model_with_weights(capsys):
    convert_weights.main(["--list"])
    out = capsys.readouterr().out
    assert (
        "resnet50               torchvision  resnet50-11ad3fa6.pth (top-1 80.858%)"
        in out
    )
    assert "se_resnet50            timm         seresnet50_a1_0-ffa00869.pth" in out
    for name in convert_weights.models_with_weights():
        assert f"\n{name} " in f"\n{out}"
    # --help describes load_converted where it names it.
    assert "`load_converted`, below" not in convert_weights.__doc__
    assert "this module's `load_converted`" in convert_weights.__doc__


def refused(args, capsys):
    """The command's error message; it must exit with status 2."""
    with pytest.raises(SystemExit) as error:
        convert_weights.main(args)
    assert error.value.code == 2
    return " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize(
    "model, source, expected",
    [
        ("resnet5", None, "Unknown model 'resnet5'. Did you mean resnet50"),
        # Only models with weights are suggested: not resnet18v2.
        (
            "resnet18v",
            None,
            "Unknown model 'resnet18v'. Did you mean resnet18, resnet152 or "
            "resnet101? --list",
        ),
        (
            "resnet18v2",
            None,
            "No published weights for resnet18v2 (no source lists it). Did you "
            "mean resnet18, resnet152 or resnet101? --list",
        ),
        (
            "resnet18",
            "torchvison",
            "No torchvison weights for resnet18. Did you mean "
            "torchvision? Its sources: torchvision.",
        ),
    ],
)
@REFUSAL
def test_unknown_models_and_sources(
    resnet18_pth, tmp_path, capsys, model, source, expected
):
    pth, _ = resnet18_pth
    args = ["--model", model, "--input", str(pth)]
    args += ["--output", str(tmp_path / "out.weights.h5")]
    message = refused(args + (["--source", source] if source else []), capsys)
    assert expected in message
    assert "--list shows the" in message or "Its sources" in message
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@REFUSAL
def test_the_output_is_checked_before_any_work(resnet18_pth, tmp_path, capsys):
    # The --overwrite run at the end converts again: replacing the file is
    # os.replace, the same under any backend.
    pth, _ = resnet18_pth
    base = ["--model", "resnet18", "--input", str(pth), "--output"]
    message = refused([*base, str(tmp_path / "resnet18.h5")], capsys)
    assert "ending in .weights.h5" in message
    message = refused([*base, str(tmp_path / "no" / "r.weights.h5")], capsys)
    assert "does not exist: create it first" in message
    existing = tmp_path / "resnet18.weights.h5"
    existing.write_bytes(b"mine")
    message = refused([*base, str(existing)], capsys)
    assert f"{existing} exists: pass --overwrite to replace it." in message
    assert existing.read_bytes() == b"mine"
    convert_weights.main([*base, str(existing), "--overwrite"])
    assert convert_weights.read_metadata(existing)["input"] == "resnet18.pth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet18.weights.h5"]


@pytest.mark.slow
@REFUSAL
def test_bad_pytorch_files_write_nothing(resnet18_pth, tmp_path, capsys):
    pth, _ = resnet18_pth
    output = tmp_path / "out" / "x.weights.h5"
    output.parent.mkdir()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(pth.read_bytes()[: 1 << 20])
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    cases = [
        (
            "resnet34",
            pth,
            "Cannot load " + str(pth) + " into model 'resnet34': "
            "- 80 missing keys (the file lacks them): layer1.2.conv1.weight",
        ),
        # The file's name says which model it holds; no Python build hint.
        (
            "resnet34",
            pth,
            "The model's weights are unchanged. The file may hold another "
            "model: its name says resnet18 (pass --model resnet18); --list "
            "names the published files (e.g. resnet34-b627a593.pth is "
            "resnet34).",
        ),
        ("resnet18", truncated, "It may be truncated or corrupt"),
        ("resnet18", corrupt, "It may be truncated or corrupt"),
        ("resnet18", tmp_path / "absent.pth", "No such input file"),
    ]
    for model, path, expected in cases:
        args = ["--model", model, "--input", str(path), "--output", str(output)]
        message = refused(args, capsys)
        assert message.startswith("convert_weights.py: error: ")
        assert expected in message, message
        assert "Build the paper configuration" not in message
        assert not list(output.parent.iterdir())  # no partial file either


@pytest.mark.backend_independent(reason="file names against the table: no Keras")
def test_a_files_name_says_its_model():
    assert convert_weights.file_model("resnet34-b627a593.pth") == "resnet34"
    assert convert_weights.file_model("seresnet50_a1_0-ffa00869.pth") == ("se_resnet50")
    assert convert_weights.file_model("resnet101.safetensors") == "resnet101"
    assert convert_weights.file_model("resnet18v2.pth") == "resnet18v2"
    assert convert_weights.file_model("weights.pth") is None


@pytest.mark.slow
@pytest.mark.backend_independent(
    reason="the file's metadata decides, before any weight is read"
)
def test_a_flattening_model_takes_the_file_at_its_size_only(tmp_path):
    # VGG's fc1 reads the flattened 7x7 map: at 32x32 it has other weights.
    # (The metadata decides, before the 500 MB model is built or read.)
    path = tmp_path / "vgg11.weights.h5"
    import h5py

    with h5py.File(path, "w") as file:
        file.attrs[convert_weights.METADATA] = json.dumps(
            {
                "model": "vgg11",
                "source": "torchvision",
                "classes": 1000,
                "image_size": [224, 224],
                "data_format": "channels_last",
                "mean": [0.5] * 3,
                "std": [0.5] * 3,
                "input": "vgg11.pth",
            }
        )
    model = vgg.MODELS["vgg11"](input_shape=(SIZE, SIZE, 3), classes=10)
    with pytest.raises(
        ValueError,
        match=r"vgg11 flattens its last feature map.*"
        r"fit 224x224 images only \(--image-size 224\)",
    ):
        convert_weights.load_converted(model, path, "vgg11")
    with pytest.raises(ValueError, match=r"holds weights of vgg11, not resnet18"):
        convert_weights.load_converted(model, path, "resnet18")
