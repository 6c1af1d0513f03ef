"""examples/transfer_learning.py end to end (smoke runs): offline on the
digits with a random backbone, and on an image folder with weights converted
from a randomized torchvision ResNet-18, where the frozen layers (and every
batch normalization) keep the file's weights and the unfrozen top stage
learns."""

import csv
import json
import shutil
import textwrap

import keras
import numpy as np
import pytest

from tests.porting.torch_references import randomized, save_state_dict, torchvision

pytest.importorskip("sklearn")  # the examples extra

from examples import convert_weights, transfer_learning
from keras_blocks.porting import weight_layers

pytestmark = pytest.mark.backend_independent(
    reason="the command's phases, files and refusals; freezing a backbone "
    "(tests/layers/test_properties.py), converted weights (tests/porting) and "
    "the callbacks (tests/callbacks) are checked on each backend"
)

SIZE = 32


def epochs_logged(logdir):
    with open(logdir / "metrics.csv", newline="") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


@pytest.mark.slow
def test_offline_with_a_random_backbone_says_so(tmp_path, capsys):
    # What a start that failed in its first `fit` leaves (its checkpoint
    # folder, empty once the lock is gone) is not a run: it is trained over.
    (tmp_path / "checkpoints" / "head").mkdir(parents=True)
    _, results = transfer_learning.main(["--smoke", "--logdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "Backbone resnet18: RANDOM weights (no --weights file given)" in out
    assert (
        "Phase 1: the new head alone, backbone frozen (BN in inference mode): " in out
    )
    assert "5,130 trainable values" in out  # the head: 512 x 10 + 10
    assert "Phase 2: fine-tuning conv5 and the head (BN kept frozen)" in out
    assert "The backbone started from random weights." in out
    assert results["weights"] is None and results["unfrozen"] == ["conv5"]
    assert epochs_logged(tmp_path) == [0, 1]  # one epoch per phase, one file
    assert json.loads((tmp_path / "results.json").read_text())["classes"] == [
        str(digit) for digit in range(10)
    ]
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")
    for phase in ("head", "fine_tune"):
        assert (tmp_path / "checkpoints" / phase / "best").is_dir()
    assert list((tmp_path / "images").iterdir())  # TensorBoardImageLogger
    assert prediction_snippet_runs(tmp_path, capsys) in results["classes"]
    # A second run into the same folder is refused.
    with pytest.raises(SystemExit, match="already holds a run"):
        transfer_learning.main(["--smoke", "--logdir", str(tmp_path)])


def prediction_snippet_runs(logdir, capsys):
    """The --help's snippet predicting with the default run's model.keras, on
    the run in `logdir` and a photo of another size; returns what it prints.
    It loaded 224x224 images into the 32x32 model ("expected shape=(None, 32,
    32, 3), found shape=(1, 224, 224, 3)")."""
    doc = transfer_learning.__doc__
    start = doc.index("    import json, keras")
    code = textwrap.dedent(doc[start : doc.index("\n\n", start)])
    code = code.replace("runs/transfer-resnet18", str(logdir))
    photo = logdir / "cat.jpg"
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), "uint8")
    keras.utils.save_img(photo, image, data_format="channels_last")
    exec(code.replace('"cat.jpg"', repr(str(photo))), {})
    return capsys.readouterr().out.strip().splitlines()[-1]


@pytest.fixture
def image_folder(tmp_path):
    """Two classes of 12 PNGs each, 40x40 (resized to 32 by the loader)."""
    rng = np.random.default_rng(0)
    for index, name in enumerate(("cats", "dogs")):
        (tmp_path / "images" / name).mkdir(parents=True)
        for count in range(12):
            image = rng.integers(0, 128, (40, 40, 3)) + 127 * index
            keras.utils.save_img(
                tmp_path / "images" / name / f"{count}.png",
                image.astype("uint8"),
                data_format="channels_last",
            )
    return tmp_path / "images"


@pytest.mark.slow
def test_converted_weights_on_an_image_folder(tmp_path, image_folder, capsys):
    net = randomized(torchvision().models.resnet18())
    pth, _ = save_state_dict(net, tmp_path, "resnet18")
    weights = tmp_path / "resnet18.weights.h5"
    convert_weights.convert("resnet18", "torchvision", pth, weights)
    args = ["--weights", str(weights), "--data-dir", str(image_folder)]
    model, results = transfer_learning.main(
        [*args, "--smoke", "--logdir", str(tmp_path / "run")]
    )
    out = capsys.readouterr().out
    assert f"Backbone resnet18 from {weights} (torchvision's resnet18.pth): " in out
    assert "2 classes" in out and results["classes"] == ["cats", "dogs"]
    assert "RANDOM" not in out
    # The file's weights, loaded the same way into a fresh backbone.
    fresh, _ = transfer_learning.build_backbone("resnet18", SIZE, str(weights))
    trained = model.get_layer(fresh.name)
    changed = {}
    for path, layer in weight_layers(fresh).items():
        theirs = weight_layers(trained)[path]
        for before, after in zip(layer.weights, theirs.weights, strict=True):
            same = np.array_equal(
                keras.ops.convert_to_numpy(before), keras.ops.convert_to_numpy(after)
            )
            changed[f"{path}/{before.name}"] = not same
    assert len(changed) == 100  # torchvision's tensors but fc's 2 and the counters
    # Phase 1 froze the backbone, phase 2 all but conv5; BN (its scale,
    # offset and moving statistics) stayed frozen, in inference mode, in both.
    bn = ("gamma", "beta", "moving_mean", "moving_variance")
    moved = sorted(name for name, flag in changed.items() if flag)
    expected = sorted(
        name for name in changed if name.startswith("conv5") and not name.endswith(bn)
    )
    assert moved == expected
    assert len(expected) == 5  # conv5_block1: 2 kernels and the shortcut; block2: 2
    # The fine-tuned classifier, saved for predictions: images in [0, 1].
    path = tmp_path / "run" / "model.keras"
    assert f"Saved the fine-tuned model to {path}: RGB images in [0, 1], " in out
    assert "probabilities of the 2 classes in results.json's order (cats, dogs)" in out
    reloaded = keras.saving.load_model(path, safe_mode=True)
    images = np.random.default_rng(1).uniform(size=(3, SIZE, SIZE, 3))
    images = images.astype("float32")
    np.testing.assert_allclose(
        reloaded.predict(images, verbose=0),
        model.predict(images, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_one_class_folder_is_refused_before_anything_is_written(
    tmp_path, image_folder, capsys
):
    shutil.rmtree(image_folder / "dogs")
    assert refused_before_writing(tmp_path, image_folder, capsys) == (
        f"--data-dir: {image_folder} holds one class folder (cats): a "
        "classifier needs at least 2, one subfolder of images per class."
    )


def refused_before_writing(tmp_path, image_folder, capsys):
    """The refusal of `image_folder`, which leaves --logdir unmade (the next
    run, with a folder fixed, may go there)."""
    logdir = tmp_path / "run"
    args = ["--data-dir", str(image_folder), "--logdir", str(logdir), "--smoke"]
    with pytest.raises(SystemExit) as error:
        transfer_learning.main(args)
    assert not logdir.exists()
    # Refused as argparse refuses a bad argument (it was exit status 1).
    assert error.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == f"transfer_learning.py: error: {error.value}"
    return str(error.value)


def test_a_class_folder_without_images_is_refused(tmp_path, image_folder, capsys):
    # An empty class folder was a class: "Found 24 files belonging to 3
    # classes", trained, accuracy reported, exit 0. Each is named.
    (image_folder / "birds").mkdir()
    (image_folder / "empty").mkdir()
    (image_folder / "empty" / "notes.txt").write_text("not an image")
    assert refused_before_writing(tmp_path, image_folder, capsys) == (
        f"--data-dir: {image_folder} has class folders without images (birds, "
        "empty): a classifier needs at least 2, one subfolder of images per class."
    )


def test_help_says_a_logdir_with_a_run_is_refused(capsys):
    with pytest.raises(SystemExit):
        transfer_learning.parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "--logdir LOGDIR default: runs/transfer-MODEL; one that already holds a run"
        in out
    )
