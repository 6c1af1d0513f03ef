"""examples/train.py end to end on every backend (short runs): what it writes,
resuming, and the errors a user meets."""

import csv

import keras
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytest.importorskip("sklearn")  # the examples extra

from examples import train  # after the skip: it needs scikit-learn


def epochs_logged(logdir):
    with open(logdir / "metrics.csv", newline="") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def test_train_demo_learns_digits(tmp_path, capsys):
    # The default model and image size; the full demo (10 epochs) reaches ~99%.
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


def test_resume_continues_where_the_run_stopped(tmp_path, capsys):
    # The smallest model and images: two runs compile twice (slow on JAX).
    args = ["--model", "cifar10_cnn", "--image-size", "8", "--logdir", str(tmp_path)]
    train.main([*args, "--epochs", "2"])
    train.main([*args, "--epochs", "3", "--resume"])
    out = capsys.readouterr().out
    assert "(resumed)" in out
    assert "CheckpointManager: restored" in out and "(2 epochs" in out
    assert epochs_logged(tmp_path) == [0, 1, 2]  # only the third epoch ran again


@pytest.mark.skipif(
    keras.config.backend() != "tensorflow",
    reason="two GoogLeNet runs: about 9 minutes on JAX on two CPU cores",
)
def test_googlenet_aux_trains_and_resumes_with_the_callbacks(tmp_path, capsys):
    # The named model with auxiliary heads: three outputs on the same labels.
    args = ["--model", "googlenet_aux", "--batch-size", "128"]
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
    assert "CheckpointManager: restored" in out and "(1 epochs" in out
    assert epochs_logged(tmp_path) == [0, 1]


def test_refuses_to_train_over_an_existing_run(tmp_path):
    args = ["--model", "cifar10_cnn", "--image-size", "8", "--epochs", "1"]
    args += ["--logdir", str(tmp_path)]
    train.main(args)
    with pytest.raises(SystemExit, match=r"already holds a run\. Pass --resume"):
        train.main(args)
    with pytest.raises(SystemExit, match=r"other settings \(batch_size: 64 -> 32\)"):
        train.main([*args, "--resume", "--batch-size", "32"])
    assert epochs_logged(tmp_path) == [0]  # nothing was overwritten


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
    assert train.MODEL in train.MODELS
    names = ("alexnet", "vgg16", "googlenet", "googlenet_aux", "resnet50")
    for name in (*names, "resnext50_32x4d"):
        assert name in train.MODELS
    assert "efficientnet_b7" in train.MODELS
    assert "cifar10_cnn" in train.MODELS
