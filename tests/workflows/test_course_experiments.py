"""examples/course_experiments.py in smoke mode (its outputs, --only, the offline
error), and examples/datasets.py reading a local CIFAR-10 copy."""

import json
import pickle
import struct
import urllib.error

import keras
import numpy as np
import pytest

pytest.importorskip("sklearn")  # the examples extra
pytest.importorskip("matplotlib")

from examples import course_experiments, datasets

pytestmark = pytest.mark.backend_independent(
    reason="the command's runs, files, plots and refusals; the Keras layers, "
    "training and augmentation recipe it drives are checked on each backend "
    "by Keras and tests/augmentation"
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGES_PER_BATCH = 8  # in the fake CIFAR-10 folder


def png_size(path):
    """(width, height) from a PNG's header, checking its signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.slow
@pytest.mark.usefixtures("without_forced_collections")
def test_smoke_runs_every_experiment_and_writes_plot_table_and_json(tmp_path):
    # One test for the whole smoke run: pytest-xdist could split tests sharing
    # a module-scoped fixture between workers and run it twice.
    names = list(course_experiments.EXPERIMENTS)
    results = course_experiments.main(["--smoke", "--output", str(tmp_path)])
    assert [r["name"] for r in results] == names
    for result in results:
        group, setting, overrides = course_experiments.EXPERIMENTS[result["name"]]
        # Each run is the baseline with its overrides, and nothing else.
        assert result["config"] == {**course_experiments.BASELINE, **overrides}
        assert (result["group"], result["setting"]) == (group, setting)
        assert 0 <= result["test_accuracy"] <= 1
        assert result["seconds"] > 0
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert len(result["history"][key]) == 1  # one epoch
    by_name = {r["name"]: r for r in results}
    assert "learning_rate" in by_name["reduce_lr"]["history"]
    assert all(r["epochs"] == 1 for r in results)

    # A panel per group but the baseline's, 3 a row, each 450x350 pixels.
    groups = {course_experiments.EXPERIMENTS[name][0] for name in names} - {None}
    rows = -(-len(groups) // 3)
    assert png_size(tmp_path / "val_accuracy.png") == (1350, 350 * rows)
    assert (tmp_path / "val_accuracy.png").stat().st_size > 20_000

    table = (tmp_path / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| experiment | setting | test accuracy |")
    assert [row.split(" | ")[0][2:] for row in rows[1:]] == names

    saved = json.loads((tmp_path / "results.json").read_text())
    assert (saved["dataset"], saved["epochs"], saved["smoke"]) == ("digits", 1, True)
    assert saved["backend"] == keras.config.backend()
    assert saved["results"] == results  # plain JSON types throughout


@pytest.mark.slow
def test_validation_is_held_out_training_data_and_the_test_split_is_used_once(
    monkeypatch,
):
    (x, y), (x_test, y_test) = datasets.load("digits", 8)
    data = ((x[:40], y[:40]), (x_test[:16], y_test[:16]))
    seen = {}

    # What run_experiment gives `fit` and `evaluate` is the whole question: the
    # spies record it and train nothing (the smoke test trains every run; an
    # eager JAX epoch here cost ~50 s, compiling each operation).
    def spy_fit(self, x=None, y=None, validation_data=None, epochs=1, **kwargs):
        seen["train"], seen["validation"] = x, validation_data[0]
        history = keras.callbacks.History()
        keys = ("loss", "accuracy", "val_loss", "val_accuracy")
        history.history = {key: [0.5] * epochs for key in keys}
        return history

    def spy_evaluate(self, x=None, y=None, **kwargs):
        seen.setdefault("test", []).append(x)
        return [1.0, 0.5]

    monkeypatch.setattr(keras.Model, "fit", spy_fit)
    monkeypatch.setattr(keras.Model, "evaluate", spy_evaluate)
    result = course_experiments.run_experiment("baseline", data, 10, 1, 0, eager=True)
    # The last tenth of the training images validates; the rest trains.
    np.testing.assert_array_equal(seen["validation"], x[36:40])
    np.testing.assert_array_equal(seen["train"], x[:36])
    # The test images are evaluated once, and that is the reported accuracy.
    (test,) = seen["test"]
    np.testing.assert_array_equal(test, x_test[:16])
    assert result["test_accuracy"] == 0.5


@pytest.mark.parametrize(
    "name, check",
    [
        (
            "strided",
            lambda m: (
                not any(
                    isinstance(layer, keras.layers.MaxPooling2D) for layer in m.layers
                )
            ),
        ),
        ("depth_3", lambda m: "block1_conv3" in {layer.name for layer in m.layers}),
        ("filters_16", lambda m: m.get_layer("block1_conv1").filters == 16),
    ],
)
def test_experiments_build_what_they_say(name, check):
    config = {**course_experiments.BASELINE, **course_experiments.EXPERIMENTS[name][2]}
    assert check(course_experiments.build_model(config, (8, 8, 3), 10))
    baseline = course_experiments.build_model(
        course_experiments.BASELINE, (8, 8, 3), 10
    )
    assert not check(baseline)


@pytest.mark.slow
def test_augment_shifts_training_images_only():
    config = {**course_experiments.BASELINE, "augment": True}
    model = course_experiments.build_model(config, (8, 8, 3), 10, mirror=False)
    augment = model.layers[1]
    assert augment.name == "cifar_augmentation"
    assert [type(layer).__name__ for layer in augment.layers] == ["RandomTranslation"]
    images = np.random.default_rng(0).uniform(size=(4, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(augment(images, training=False)), images
    )


def write_fake_cifar10(folder, seed=0):
    """The CIFAR-10 python version's layout: pickled dicts of uint8 rows of 3072
    (1024 red, 1024 green, 1024 blue values, row-major) and their labels."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for index, name in enumerate(names):
        data = rng.integers(0, 256, (IMAGES_PER_BATCH, 3072), dtype=np.uint8)
        labels = [(index + i) % 10 for i in range(IMAGES_PER_BATCH)]
        with open(folder / name, "wb") as file:
            pickle.dump({b"data": data, b"labels": labels}, file)
    return folder


def put_pixel(path, image, row, col, rgb):
    with open(path, "rb") as file:
        batch = pickle.load(file, encoding="bytes")
    for channel, value in enumerate(rgb):
        batch[b"data"][image, channel * 1024 + row * 32 + col] = value
    with open(path, "wb") as file:
        pickle.dump(batch, file)


@pytest.mark.parametrize("subfolder", [False, True])
def test_datasets_reads_a_local_cifar10_copy(tmp_path, subfolder):
    folder = write_fake_cifar10(tmp_path / "cifar-10-batches-py")
    put_pixel(folder / "data_batch_2", 1, 5, 7, (255, 51, 0))
    put_pixel(folder / "test_batch", 3, 31, 0, (0, 102, 204))
    # Either the extracted folder or the folder holding it.
    data_dir = tmp_path if subfolder else folder

    (x_train, y_train), (x_test, y_test) = datasets.load("cifar10", data_dir=data_dir)
    assert x_train.shape == (5 * IMAGES_PER_BATCH, 32, 32, 3)
    assert x_test.shape == (IMAGES_PER_BATCH, 32, 32, 3)
    assert x_train.dtype == x_test.dtype == np.float32
    assert x_train.min() >= 0 and x_train.max() <= 1
    # Second image of the second batch: row 5, column 7, channels last.
    np.testing.assert_allclose(
        x_train[IMAGES_PER_BATCH + 1, 5, 7], [1.0, 0.2, 0.0], atol=1e-6
    )
    np.testing.assert_allclose(x_test[3, 31, 0], [0.0, 0.4, 0.8], atol=1e-6)
    # Labels in file order: batches 1-5, then the test batch.
    assert y_train.tolist() == [
        (b + i) % 10 for b in range(5) for i in range(IMAGES_PER_BATCH)
    ]
    assert y_test.tolist() == [(5 + i) % 10 for i in range(IMAGES_PER_BATCH)]


def test_missing_cifar10_files_are_named(tmp_path):
    folder = write_fake_cifar10(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_3").unlink()
    with pytest.raises(datasets.DatasetUnavailableError, match="missing data_batch_3"):
        datasets.load("cifar10", data_dir=folder)


@pytest.mark.slow
@pytest.mark.usefixtures("without_forced_collections")
def test_only_selects_experiments_on_a_local_cifar10(tmp_path):
    folder = write_fake_cifar10(tmp_path / "cifar-10-batches-py")
    output = tmp_path / "out"
    results = course_experiments.main(
        [
            "--smoke",
            "--dataset",
            "cifar10",
            "--data-dir",
            str(folder),
            "--only",
            "xavier",
            "--output",
            str(output),
        ]
    )
    assert [r["name"] for r in results] == ["xavier"]
    rows = [
        line
        for line in (output / "results.md").read_text().splitlines()
        if line.startswith("| ")
    ]
    assert len(rows) == 2 and rows[1].startswith("| xavier | Xavier")
    assert png_size(output / "val_accuracy.png") == (450, 350)  # one panel
    saved = json.loads((output / "results.json").read_text())
    assert saved["dataset"] == "cifar10"


def test_offline_cifar10_without_data_dir_explains(tmp_path, monkeypatch):
    def offline():
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    output = tmp_path / "out"
    with pytest.raises(SystemExit) as raised:
        course_experiments.main(
            ["--smoke", "--dataset", "cifar10", "--output", str(output)]
        )
    message = str(raised.value.code)
    assert message.startswith("error: CIFAR-10 could not be downloaded (URLError")
    assert "--data-dir path/to/cifar-10-batches-py" in message
    assert not output.exists()


def test_bad_flags(capsys):
    with pytest.raises(SystemExit) as raised:
        course_experiments.main(["--data-dir", "somewhere"])
    assert raised.value.code == 2
    assert "--data-dir is for --dataset cifar10" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        course_experiments.main(["--only", "dropout"])
    assert "invalid choice: 'dropout'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        course_experiments.main(["--epochs", "0"])
    assert "--epochs must be at least 1, got 0" in capsys.readouterr().err


def test_the_smoke_size_is_the_networks_smallest():
    # Set before Keras loads (the command parses first); the registry knows.
    from keras_blocks.models import model_entry

    assert model_entry("cifar10_cnn").min_size == course_experiments.SMOKE_SIZE
