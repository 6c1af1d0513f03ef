"""examples/train.py end to end (short runs): what it writes, resuming, and the
errors a user meets.

The command wires together what other folders check on each backend: the
models' numerics (tests/models), the callbacks and each checkpoint store
(tests/callbacks), the augmentation recipes (tests/augmentation) and weight
loading (tests/porting). What is checked here (its arguments, files, resume
bookkeeping, reports and refusals) is the same under any backend: it runs
once.
"""

import csv
import json
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests import ROOT

pytest.importorskip("sklearn")  # the examples extra

from examples import _augment, train  # after the skip: needs scikit-learn
from keras_blocks.models import list_models, model_entry

pytestmark = pytest.mark.backend_independent(
    reason="train.py's arguments, files, resume bookkeeping and reports; the "
    "models, callbacks, checkpoint stores and weight loading it wires together "
    "are checked on each backend in tests/models, callbacks and porting"
)


def test_the_scripts_run_as_files_from_the_repository_root():
    for script in ("examples/train.py", "examples/backbones.py"):
        result = subprocess.run(
            [sys.executable, script, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.startswith("usage: "), script


def epochs_logged(logdir):
    with open(logdir / "metrics.csv", newline="") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def keep_images(monkeypatch, *counts):
    """`train.load` keeping the first images of each split: training,
    validation and test (None: all of them)."""
    load = train.load

    def fewer_images(*args):
        splits = zip(load(*args), counts, strict=True)
        return [(x[:n], y[:n]) for (x, y), n in splits]

    monkeypatch.setattr(train, "load", fewer_images)


@pytest.mark.slow
def test_train_demo_learns_digits(tmp_path, capsys, monkeypatch):
    # The default model and image size; the full demo (10 epochs) reaches ~99%.
    # Half the training images (640 of 1293): 2 epochs reach 0.84 on the 360
    # test images (0.91 on all of them), still far from chance, and a fifth
    # less of the test's time.
    keep_images(monkeypatch, 640, None, None)
    accuracy = train.main(["--epochs", "2", "--logdir", str(tmp_path)])
    assert accuracy > 0.5  # chance is 0.1
    out = capsys.readouterr().out
    assert "test accuracy" in out
    assert "cifar_resnet20 on digits at 16x16" in out
    assert epochs_logged(tmp_path) == [0, 1]
    curves = (tmp_path / "curves.png").read_bytes()
    assert curves.startswith(b"\x89PNG") and len(curves) > 10_000
    # TensorBoard's own reader finds the epoch metrics, and the library's
    # logger's predictions, confusion matrix, histograms and learning rate.
    events = EventAccumulator(str(tmp_path / "train"), size_guidance={"tensors": 0})
    events.Reload()
    tags = events.Tags()["tensors"]
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(tags)
    assert [event.step for event in events.Tensors("epoch_loss")] == [0, 1]
    images = EventAccumulator(str(tmp_path / "images"), size_guidance={"tensors": 0})
    images.Reload()
    tags = images.Tags()["tensors"]
    assert {"images/predictions", "confusion_matrix", "learning_rate"} <= set(tags)
    assert [event.step for event in images.Tensors("images/predictions")] == [0, 1]
    assert any(tag.startswith("weights/") and "kernel" in tag for tag in tags)
    # The checkpoints: one each epoch, and the best validation accuracy.
    assert (tmp_path / "checkpoints" / "best").is_dir()
    # Evaluated after its end, the run restores its last checkpoint and
    # evaluates as it ended: before every weight (the residual blocks' BN
    # statistics) was saved on TensorFlow, that gave 0.1, chance.
    args = ["--epochs", "2", "--logdir", str(tmp_path)]
    resumed = train.main([*args, "--evaluate-only"])
    assert "CheckpointManager: restored" in capsys.readouterr().out
    np.testing.assert_allclose(resumed, accuracy, atol=1e-6)


@pytest.mark.slow
def test_resume_continues_where_the_run_stopped(tmp_path, capsys):
    # The smallest model and images: each run compiles again (slow on JAX).
    args = ["--model", "cifar10_cnn", "--image-size", "8", "--logdir", str(tmp_path)]
    train.main([*args, "--epochs", "2"])
    # Never over an existing run: another run there is refused, and so is a
    # resume with other settings; neither writes anything. (Checked on this
    # run rather than on one trained for the purpose: a run compiles anew.)
    with pytest.raises(SystemExit, match=r"already holds a run\. Pass --resume"):
        train.main([*args, "--epochs", "2"])
    with pytest.raises(SystemExit, match=r"other settings \(batch_size: 64 -> 32\)"):
        train.main([*args, "--epochs", "2", "--resume", "--batch-size", "32"])
    assert epochs_logged(tmp_path) == [0, 1]  # nothing was overwritten
    accuracy = train.main([*args, "--epochs", "3", "--resume"])
    out = capsys.readouterr().out
    assert "(resumed)" in out
    assert "CheckpointManager: restored" in out and "(2 epochs" in out
    assert epochs_logged(tmp_path) == [0, 1, 2]  # only the third epoch ran again
    # The reducer's learning rate is a column, in the resumed rows too.
    with open(tmp_path / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        assert None not in row and "NA" not in row.values()  # the header's columns
    # Three epochs without improvement come before a reduction (patience).
    rates = [float(row["learning_rate"]) for row in rows]
    assert rates == pytest.approx([train.LEARNING_RATE] * 3)

    # A finished run trains nothing more, and is evaluated only if asked.
    assert train.main([*args, "--epochs", "3", "--resume"]) is None
    out = capsys.readouterr().out
    assert "Nothing left to do" in out and "has done 3 epochs," in out
    assert "--epochs M with M > 3" in out and "--evaluate-only" in out
    assert "Backend" not in out  # no test accuracy
    settings = (tmp_path / "run.json").read_text()
    # The restored checkpoint is the model the resumed run evaluated.
    assert train.main([*args, "--evaluate-only"]) == pytest.approx(accuracy, abs=1e-6)
    out = capsys.readouterr().out
    assert "test accuracy" in out and "after 3 epochs (restored from" in out
    assert epochs_logged(tmp_path) == [0, 1, 2]  # nothing trained or written
    assert (tmp_path / "run.json").read_text() == settings


@pytest.mark.slow
def test_googlenet_aux_trains_and_resumes_with_the_callbacks(
    tmp_path, capsys, monkeypatch
):
    # The named model with auxiliary heads: three outputs on the same labels.
    # A batch of training images, half a batch of validation and test
    # images: what is checked (the heads' metrics, the callbacks' files, the
    # resume) does not depend on how many batches an epoch has, nor on their
    # size, and a 65x65 GoogLeNet step costs seconds per 100 images (all 1163
    # training digits: ~100 s of TF CI time; 256 of them in batches of 128:
    # ~60 s).
    keep_images(monkeypatch, 32, 16, 16)
    args = ["--model", "googlenet_aux", "--batch-size", "32"]
    args += ["--logdir", str(tmp_path)]
    accuracy = train.main([*args, "--epochs", "1"])
    assert 0 <= accuracy <= 1
    assert "googlenet_aux on digits at 65x65" in capsys.readouterr().out
    with open(tmp_path / "metrics.csv", newline="") as file:
        (row,) = csv.DictReader(file)
    assert {"predictions_accuracy", "val_aux1_loss", "val_aux2_loss"} <= set(row)
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")
    # The best checkpoint follows the main head's validation accuracy.
    assert (tmp_path / "checkpoints" / "best").is_dir()
    images = EventAccumulator(str(tmp_path / "images"), size_guidance={"tensors": 0})
    images.Reload()
    tags = images.Tags()["tensors"]
    assert "learning_rate" in tags
    assert any(tag.startswith("weights/aux2") for tag in tags)

    train.main([*args, "--epochs", "2", "--resume"])
    out = capsys.readouterr().out
    assert "CheckpointManager: restored" in out and "(1 epoch," in out
    assert epochs_logged(tmp_path) == [0, 1]


def test_a_refused_image_size_leaves_the_directory_free(tmp_path):
    args = ["--model", "googlenet_aux", "--epochs", "1", "--logdir", str(tmp_path)]
    with pytest.raises(SystemExit, match=r"at least 65"):
        train.main([*args, "--image-size", "32"])
    assert not (tmp_path / "run.json").exists()  # a retry is not "another run"


def test_cifar10_offline_is_a_clear_message(tmp_path, monkeypatch):
    def offline():
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(SystemExit, match="--data-dir path/to/cifar-10-batches-py"):
        train.main(["--dataset", "cifar10", "--logdir", str(tmp_path)])
    assert not (tmp_path / "run.json").exists()


def test_every_model_name_is_a_reference_model():
    names = list_models()
    assert train.MODEL in names
    for name in ("alexnet", "vgg16", "googlenet", "googlenet_aux", "resnet50"):
        assert name in names
    for name in ("resnext50_32x4d", "efficientnet_b7", "cifar10_cnn"):
        assert name in names


# What a new user met (issue 16); test_resume_continues_where_the_run_stopped
# checks a finished run and the learning-rate column.

SMALLEST = ["--model", "cifar10_cnn", "--image-size", "8"]  # quick to compile


def test_evaluate_only_needs_a_run(tmp_path):
    args = [*SMALLEST, "--logdir", str(tmp_path / "run"), "--evaluate-only"]
    with pytest.raises(SystemExit, match=r"Nothing to evaluate in .*run"):
        train.main(args)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, match",
    [
        (["--model", "vgg11", "--image-size", "16"], "at least 32"),
        (["--dataset", "cifar10", "--data-dir", "nowhere"], "does not hold"),
    ],
    ids=["image-size", "cifar10-missing"],
)
def test_a_start_that_fails_writes_nothing(tmp_path, args, match):
    logdir = tmp_path / "run"
    with pytest.raises(SystemExit, match=match):
        train.main([*args, "--epochs", "1", "--logdir", str(logdir)])
    assert not logdir.exists()  # a retry, resumed or not, is not blocked


def test_resuming_on_another_backend_is_refused_up_front(tmp_path):
    other = next(
        b for b in ("tensorflow", "jax", "torch") if b != keras.config.backend()
    )
    run = {
        "model": "cifar10_cnn",
        "dataset": "digits",
        "image_size": 8,
        "batch_size": train.BATCH_SIZE,
        "learning_rate": train.LEARNING_RATE,
        "seed": train.SEED,
        "backend": other,
    }
    settings = json.dumps(run, indent=2)
    (tmp_path / "run.json").write_text(settings)
    args = [*SMALLEST, "--epochs", "1", "--logdir", str(tmp_path)]
    for mode in ("--resume", "--evaluate-only"):
        with pytest.raises(SystemExit) as error:
            train.main([*args, mode])
        message = str(error.value)
        assert f"trained on {other}; resume it with KERAS_BACKEND={other}" in message
        assert f"(this is {keras.config.backend()})" in message
    assert (tmp_path / "run.json").read_text() == settings
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run.json"]


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--epochs", "-1", "a strictly positive integer"),
        ("--epochs", "0", "a strictly positive integer"),
        ("--epochs", "1.5", "a strictly positive integer"),
        ("--batch-size", "0", "a strictly positive integer"),
        ("--image-size", "0", "a strictly positive integer"),
        ("--seed", "-1", "a non-negative integer"),
        ("--learning-rate", "-1", "a strictly positive finite number"),
        ("--learning-rate", "0", "a strictly positive finite number"),
        ("--learning-rate", "nan", "a strictly positive finite number"),
        ("--learning-rate", "inf", "a strictly positive finite number"),
    ],
)
def test_bad_numbers_are_refused_as_the_library_refuses_them(
    tmp_path, capsys, option, value, expected
):
    args = [*SMALLEST, "--epochs", "1", "--logdir", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as error:
        train.main([*args, option, value])
    assert error.value.code == 2  # argparse's usage error
    message = f"argument {option}: Expected {expected}. Received: {value}"
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # unwrapped
    for default in (train.EPOCHS, train.BATCH_SIZE, train.LEARNING_RATE, train.SEED):
        assert f"(default: {default})" in out
    assert f"(default: {train.MODEL})" in out and "(default: digits)" in out
    assert "python -m examples.train --model cifar10_cnn" in out  # the usage text
    assert "python -m examples.models --list" in out  # where the models are


def test_a_misspelled_model_gets_a_suggestion(capsys):
    with pytest.raises(SystemExit) as error:
        train.main(["--model", "resnet5"])
    assert error.value.code == 2
    err = capsys.readouterr().err
    assert "argument --model: invalid choice: 'resnet5' (did you mean resnet50" in err
    assert "`python -m examples.models --list` lists the" in err
    assert "cifar_resnet20" not in err  # not the whole list


@pytest.mark.slow
def test_augment_and_ten_crops_report_their_effect(tmp_path, capsys):
    args = ["--model", "cifar10_cnn", "--image-size", "8", "--logdir", str(tmp_path)]
    accuracy = train.main([*args, "--epochs", "1", "--augment", "--tta", "ten_crop"])
    out = capsys.readouterr().out
    assert "Augmentation (cifar_augmentation, 8x8 images): RandomTranslation" in out
    assert "With ten_crop (5 crops per image, no mirrors" in out  # digits
    saved = json.loads((tmp_path / "test.json").read_text())
    assert saved["augment"] == "cifar" and saved["accuracy"] == pytest.approx(accuracy)
    tta = saved["tta"]["ten_crop"]
    assert tta["crops"] == 5 and 0 <= tta["accuracy"] <= 1 and tta["epochs"] == 1
    assert json.loads((tmp_path / "run.json").read_text())["augment"] is True
    # --evaluate-only (and --resume) take the run's settings from run.json:
    # the logdir alone names the run; an option given differently is refused.
    again = train.main(["--logdir", str(tmp_path), "--evaluate-only"])
    assert again == pytest.approx(accuracy, abs=1e-6)
    with pytest.raises(SystemExit, match=r"image_size: 8 -> 16.*Leave these"):
        train.main([*args[:-4], "--image-size", "16", *args[-2:], "--evaluate-only"])


@pytest.mark.parametrize(
    "name, kind",
    [
        ("alexnet", "alexnet"),
        ("cifar_resnet20", "cifar"),
        ("cifar10_cnn", "cifar"),
        ("efficientnet_b0", "efficientnet"),
        ("resnet18", "crop_flip"),
        ("vgg11_lrn", "crop_flip"),
        ("googlenet", "crop_flip"),
    ],
)
def test_each_family_gets_its_papers_recipe(name, kind):
    family = model_entry(name).family
    assert _augment.recipe(family, True) == kind
    assert _augment.recipe(family, False) is None


@pytest.mark.slow
def test_crop_recipes_take_larger_images_and_crop_them():
    (x, _), _, (x_test, _) = train.load("digits", 18, None, 0)  # 16 x 256 / 224
    layers = _augment.augmentation_layers("alexnet", 16, "digits", x[:64], 0)
    colour = layers.layers[-1]
    assert type(colour).__name__ == "PCAColorAugmentation"
    assert float(keras.ops.max(colour.adapted_eigenvalues)) > 0  # adapted
    assert "RandomFlip" not in [type(layer).__name__ for layer in layers.layers]
    model, net = train.build_and_compile(
        "cifar10_cnn", 16, "digits", 1e-3, 0, layers, 18
    )
    assert model.input_shape[1:3] == (18, 18) and net.input_shape[1:3] == (16, 16)
    # --tta crops the larger test images as they are; other runs' are padded.
    assert _augment.tta_images(x_test, 16, "alexnet") is x_test
    (_, _), _, (small, _) = train.load("digits", 16, None, 0)
    assert _augment.tta_images(small, 16, "cifar").shape[1:3] == (20, 20)


@pytest.mark.slow
def test_weights_fine_tunes_from_a_converted_file(tmp_path, capsys, monkeypatch):
    from examples import convert_weights, datasets
    from tests.porting.torch_references import randomized, save_state_dict, torchvision

    net = randomized(torchvision().models.resnet18())
    pth, _ = save_state_dict(net, tmp_path, "resnet18")
    weights = tmp_path / "resnet18.weights.h5"
    convert_weights.convert("resnet18", "torchvision", pth, weights)
    load = datasets.load

    def few(*args, **kwargs):  # 48 training, 16 validation, 32 test images
        (x, y), (x_test, y_test) = load(*args, **kwargs)
        return (x[:64], y[:64]), (x_test[:32], y_test[:32])

    monkeypatch.setattr(datasets, "load", few)
    args = ["--model", "resnet18", "--image-size", "32", "--logdir", str(tmp_path)]
    train.main(
        [*args, "--epochs", "1", "--batch-size", "32", "--weights", str(weights)]
    )
    out = capsys.readouterr().out
    # Every layer but the classifier: ImageNet's 1000 classes, the digits' 10.
    assert (
        f"Weights from {weights} (torchvision): 40 layers, 11,186,112 values; a "
        "new predictions layer (other classes)." in out
    )
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["weights"]["mean"] == [0.485, 0.456, 0.406]  # the data's
    # A resumed run has its weights in its checkpoint.
    with pytest.raises(SystemExit) as error:
        train.main([*args, "--epochs", "2", "--resume", "--weights", str(weights)])
    assert error.value.code == 2
    assert "--resume uses the run's checkpoint, which holds its weights" in (
        " ".join(capsys.readouterr().err.split())
    )
    # Another model's file, and a PyTorch file not converted, are refused.
    other = ["--logdir", str(tmp_path / "other"), "--weights"]
    with pytest.raises(SystemExit, match="holds weights of resnet18, not resnet34"):
        train.main(["--model", "resnet34", *other, str(weights)])
    with pytest.raises(SystemExit, match="Convert a published PyTorch file first"):
        train.main(["--model", "resnet18", *other, pth])
    # A model without published weights is not told to convert them.
    with pytest.raises(SystemExit) as error:
        train.main(["--model", "resnet18v2", *other, str(weights)])
    assert str(error.value).endswith(
        "pass --model resnet18; resnet18v2 has no published weights "
        "(examples/convert_weights.py --list names the models that have)."
    )
    assert not (tmp_path / "other").exists()


# What a new user met (issue 27): --resume and --evaluate-only on a run that
# is not there or whose checkpoints cannot be read, and one test.json for
# several evaluations.


def one_line(error):
    """The message of a command's refusal: one line, in the command's terms."""
    message = str(error.value)
    assert "\n" not in message and "restore=" not in message, message
    assert "`directory`" not in message, message  # the Python API's words
    return message


def test_resume_needs_a_run(tmp_path, capsys):
    # A typo in --logdir: --resume means resume, never a new full run.
    logdir = tmp_path / "runz"
    with pytest.raises(SystemExit) as error:
        train.main([*SMALLEST, "--epochs", "1", "--logdir", str(logdir), "--resume"])
    message = one_line(error)
    # Refused as argparse refuses a bad argument (it was exit status 1).
    assert error.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"train.py: error: {message}"
    assert f"Nothing to resume in {logdir}: it holds no run (run.json)" in message
    assert "leave out --resume to start a new run there" in message
    assert not logdir.exists()


@pytest.mark.slow
def test_each_test_time_augmentation_keeps_its_result_until_the_index_goes(
    tmp_path, capsys, monkeypatch
):
    # 64 test images: what test.json keeps does not depend on how many were
    # evaluated (each multi_crop evaluation of all 360 digits ran 25,920
    # crops).
    keep_images(monkeypatch, None, None, 64)
    args = [*SMALLEST, "--epochs", "1", "--logdir", str(tmp_path)]
    train.main(args)
    results = {}
    for scheme in ("ten_crop", "multi_crop"):
        train.main(["--logdir", str(tmp_path), "--evaluate-only", "--tta", scheme])
        out = capsys.readouterr().out
        results[scheme] = float(
            out.split(f"With {scheme} (")[1].split("accuracy ")[1][:6]
        )
    saved = json.loads((tmp_path / "test.json").read_text())
    assert sorted(saved["tta"]) == ["multi_crop", "ten_crop"]
    for scheme, accuracy in results.items():
        assert saved["tta"][scheme]["epochs"] == 1
        assert saved["tta"][scheme]["accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert saved["tta"]["ten_crop"]["crops"] == 5  # no mirrors on the digits
    # An evaluation without --tta keeps them too.
    train.main(["--logdir", str(tmp_path), "--evaluate-only"])
    assert json.loads((tmp_path / "test.json").read_text())["tta"] == saved["tta"]

    # The same run with its checkpoints' index deleted: --resume and
    # --evaluate-only refuse it in one line, and touch nothing.
    checkpoints = tmp_path / "checkpoints"
    (index,) = (
        path for path in checkpoints.iterdir() if path.name.startswith("checkpoint")
    )
    index.unlink()
    before = sorted(path.name for path in checkpoints.iterdir())
    for mode, action in (("--resume", "resume"), ("--evaluate-only", "evaluate")):
        with pytest.raises(SystemExit) as error:
            train.main([*args, mode])
        message = one_line(error)
        assert message.startswith(f"Cannot {action} the run in {tmp_path}: ")
        assert f"but not their index {index.name}" in message
        assert "another --logdir" in message  # what to do on the command line
    assert sorted(path.name for path in checkpoints.iterdir()) == before


def test_an_older_test_json_keeps_its_result(tmp_path):
    # test.json held one scheme before: {"tta": {"scheme": ..., ...}}.
    path = tmp_path / "test.json"
    tta = {"scheme": "ten_crop", "crops": 5, "accuracy": 0.5}
    path.write_text(json.dumps({"epochs": 2, "accuracy": 0.4, "tta": tta}))
    multi = {"crops": 72, "accuracy": 0.6, "epochs": 3}
    results = {"epochs": 3, "accuracy": 0.45, "tta": {"multi_crop": multi}}
    assert train.with_earlier_tta(path, results)["tta"] == {
        "ten_crop": {"crops": 5, "accuracy": 0.5, "epochs": 2},
        "multi_crop": multi,
    }


# Every command of the repository: each module of examples/, tools/ and
# benchmarks/ that runs as `python -m package.module`.
COMMANDS = sorted(
    f"{package}.{path.stem}"
    for package in ("examples", "tools", "benchmarks")
    for path in (ROOT / package).glob("[!_]*.py")
    if 'if __name__ == "__main__":' in path.read_text()
)
HEAVY = ("keras", "keras_blocks", "tensorflow", "torch", "jax", "numpy")
HEAVY += ("scipy", "sklearn", "matplotlib", "tensorboard", "h5py", "onnx")


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--help"], ["--no-such-option"]])
def test_every_command_answers_help_and_wrong_arguments_at_once(args):
    # Importing Keras takes seconds (about 22 with convert_weights' imports,
    # issue 27): every command parses its arguments before, so that `--help`
    # and a wrong argument answer in a moment. What is checked is the cause,
    # the heavy imports; a time limit would fail on a loaded machine, so the
    # seconds only bound a hang (a Python start with argparse takes ~0.1 s).
    assert len(COMMANDS) >= 15, COMMANDS  # 19: examples 8, tools 7, benchmarks 4
    slow = {}  # command: seconds and heavy imports
    for command in COMMANDS:
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", command, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        seconds = time.perf_counter() - start
        if args == ["--help"]:
            assert result.returncode == 0, (command, result.stderr[-2000:])
            assert result.stdout.startswith("usage: "), command
        else:  # argparse's one-line error
            assert result.returncode == 2, (command, result.stderr[-2000:])
            assert "error: " in result.stderr.splitlines()[-1], command
        imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
        heavy = sorted(imported & set(HEAVY))
        if heavy or seconds > 30:
            slow[command] = f"{seconds:.1f} s, imports {', '.join(heavy) or 'none'}"
    assert not slow, f"a heavy import (or over 30 s): {slow}"


def test_the_tools_command_lines_name_what_they_run():
    # The choices parsed before Keras loads are the names the tools run.
    from benchmarks import efficientnet_build
    from keras_blocks import deploy, efficientnet
    from tools import export_table, model_tables

    assert tuple(efficientnet.PRESETS) == efficientnet_build.VARIANTS
    assert tuple(export_table.FORMAT_NAMES) == deploy.FORMATS
    assert set(model_tables.ROWS) <= set(model_tables.FAMILIES)


def test_the_old_family_imports_forward_with_a_deprecation_warning():
    import examples
    from keras_blocks.models import resnet

    examples.__dict__.pop("resnet", None)  # warned once per process
    with pytest.warns(FutureWarning, match="moved to keras_blocks.models"):
        from examples import resnet as old
    assert old is resnet
    sys.modules.pop("examples.vgg", None)
    examples.__dict__.pop("vgg", None)
    with pytest.warns(FutureWarning, match="examples.vgg moved"):
        from examples.vgg import VGG
    from keras_blocks.models import vgg

    assert VGG is vgg.VGG
    with pytest.raises(AttributeError):
        examples.no_such_family  # noqa: B018


def test_the_models_command_lists_builds_and_refuses(capsys):
    from examples import models

    models.main(["--list", "cifar_resnet*"])
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == list_models("cifar_resnet*")
    model = models.main(["--model", "cifar10_cnn", "--smoke", "--no-summary"])
    out = capsys.readouterr().out
    assert f"cifar10_cnn: {model.count_params():,} parameters" in out
    assert "one step: loss" in out
    with pytest.raises(SystemExit) as error:
        models.main(["--list", "zzz*"])
    assert error.value.code == 2
    assert "No model matches 'zzz*'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:
        models.main(["--model", "resnet18", "--weights", "missing.pth"])
    assert error.value.code == 2
    assert "No weights file at 'missing.pth'" in capsys.readouterr().err
