"""Damaged checkpoints, a second process, a failed save: `CheckpointManager`
restores only what its manifests vouch for, falls back with a warning, and
fails with errors that say what happened and where."""

import errno
import glob
import json
import os
import re
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest

from keras_blocks.callbacks import CheckpointManager
from tests.callbacks.markers import STORES

RNG = np.random.default_rng(0)
X = RNG.random((64, 6)).astype("float32")
Y = (X.sum(axis=1) > 3).astype("int32")
LOCK = "checkpoint.lock"


def run(directory, epochs, probe=None, **manager_kwargs):
    """A fresh process's view; 48 training samples in batches of 16: 3 a epoch."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile("adam", loss="sparse_categorical_crossentropy")
    manager = CheckpointManager(directory, seed=3, verbose=0, **manager_kwargs)
    callbacks = [manager] + ([] if probe is None else [probe(manager)])
    history = model.fit(
        X,
        Y,
        epochs=epochs,
        batch_size=16,
        validation_split=0.25,
        verbose=0,
        callbacks=callbacks,
    )
    return model, manager, history


def files_of(checkpoint):
    """The files of a checkpoint: a folder (JAX, PyTorch) or a prefix (TF)."""
    if os.path.isdir(checkpoint):
        return sorted(glob.glob(os.path.join(checkpoint, "*")))
    return sorted(glob.glob(glob.escape(checkpoint) + ".*"))


def damage(checkpoint, how):
    files = files_of(checkpoint)
    largest = max(files, key=os.path.getsize)  # the weights
    if how == "truncate":
        with open(largest, "r+b") as file:
            file.truncate(os.path.getsize(largest) // 2)
    elif how == "flip":
        with open(largest, "r+b") as file:
            file.seek(os.path.getsize(largest) // 2)
            byte = file.read(1)[0]
            file.seek(-1, os.SEEK_CUR)
            file.write(bytes([byte ^ 0x10]))
    elif how == "delete":
        os.remove(largest)
    elif how == "delete_manifest":
        os.remove(next(f for f in files if f.endswith("manifest.json")))


def files_of_run(directory):
    return glob.glob(os.path.join(glob.escape(str(directory)), "ckpt-*"))


def assert_same_weights(a, b):
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return run(tmp_path_factory.mktemp("straight"), 3)[0]


@pytest.mark.slow
@STORES
@pytest.mark.parametrize("how", ["truncate", "flip", "delete", "delete_manifest"])
def test_damaged_latest_falls_back_to_the_newest_intact(tmp_path, how, straight):
    _, manager, _ = run(tmp_path, 2)
    older, newest = manager.checkpoints
    damage(newest, how)
    with pytest.warns(
        UserWarning,
        match=rf"damaged checkpoint \({re.escape(newest)}: .*restoring {re.escape(older)}",
    ):
        model, manager, history = run(tmp_path, 3)
    assert history.epoch == [1, 2]  # from epoch 1's checkpoint
    assert_same_weights(straight, model)  # not the damaged weights
    # The checkpoint written again at that step is intact.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert run(tmp_path, 3)[2].epoch == []


@STORES
def test_damaged_restore_path_is_refused(tmp_path):
    _, manager, _ = run(tmp_path, 1)
    damage(manager.latest_checkpoint, "flip")
    with pytest.raises(ValueError, match=r"is damaged: the SHA-256 of .* differs"):
        run(tmp_path / "other", 1, restore=manager.latest_checkpoint)


@pytest.mark.slow
@STORES
def test_every_checkpoint_damaged_is_refused(tmp_path):
    _, manager, _ = run(tmp_path, 2, max_to_keep=1)
    damage(manager.latest_checkpoint, "truncate")
    with pytest.raises(
        ValueError, match=r"Every checkpoint that .* indexes is damaged"
    ):
        run(tmp_path, 3)


@pytest.mark.slow
@STORES
def test_rotation_never_keeps_a_damaged_checkpoint_over_an_intact_one(tmp_path):
    # Saves at steps 3 and 6; then, resumed from 3 with saves every 2
    # batches, at step 4: rotating out the oldest would delete the intact
    # ckpt-3 and keep the damaged ckpt-6.
    _, manager, _ = run(tmp_path, 2, save_freq=3, max_to_keep=2)
    newest = manager.checkpoints[-1]
    damage(newest, "flip")
    seen = []

    def probe(manager):
        def record(batch, logs=None):
            if not seen:
                seen.append([os.path.basename(p) for p in manager.checkpoints])

        return keras.callbacks.LambdaCallback(on_train_batch_end=record)

    with pytest.warns(UserWarning, match="damaged checkpoint"):
        run(tmp_path, 2, probe=probe, save_freq=2, max_to_keep=2)
    assert seen == [["ckpt-3", "ckpt-4"]]


@pytest.mark.slow
@STORES
def test_second_process_is_refused(tmp_path):
    run(tmp_path, 1)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK).write_text(
            json.dumps({"pid": other.pid, "host": os.uname()[1]})
        )
        with pytest.raises(
            ValueError, match=rf"in use by another training process \(pid {other.pid},"
        ):
            run(tmp_path, 2)
    finally:
        other.kill()
        other.wait()
    # Its lock is now stale: taken over with a warning, and released at the end.
    with pytest.warns(
        UserWarning, match=rf"taking over the lock .* of process {other.pid}"
    ):
        assert run(tmp_path, 2)[2].epoch == [1]
    assert not (tmp_path / LOCK).exists()


@STORES
def test_lock_is_held_during_training(tmp_path):
    locks = []

    def probe(manager):
        def record(epoch, logs=None):
            locks.append(json.loads((tmp_path / LOCK).read_text())["pid"])

        return keras.callbacks.LambdaCallback(on_epoch_end=record)

    run(tmp_path, 2, probe=probe)
    assert locks == [os.getpid()] * 2
    assert not (tmp_path / LOCK).exists()


@pytest.mark.slow
@STORES
def test_failed_save_names_the_directory_and_keeps_the_previous(tmp_path, monkeypatch):
    _, manager, _ = run(tmp_path, 1)
    latest = manager.latest_checkpoint

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        def disk_full(*args, **kwargs):  # TensorFlow's error
            raise tf.errors.ResourceExhaustedError(
                None, None, "No space left on device"
            )

        monkeypatch.setattr(tf.train.CheckpointManager, "save", disk_full)
    else:
        monkeypatch.setattr(keras.Model, "save_weights", disk_full)
    with pytest.raises(
        OSError,
        match=rf"could not save a checkpoint in {re.escape(str(tmp_path))}: .*No space "
        rf"left on device.* The latest checkpoint is still {re.escape(latest)}\.",
    ):
        run(tmp_path, 2)
    monkeypatch.undo()
    assert not glob.glob(str(tmp_path / "*.partial"))
    _, manager, history = run(tmp_path, 2)
    assert history.epoch == [1]  # resumed from the previous checkpoint


@pytest.mark.slow
@STORES
def test_damaged_index_is_refused(tmp_path):
    run(tmp_path, 1)
    index = (
        "checkpoint" if keras.config.backend() == "tensorflow" else "checkpoint.json"
    )
    (tmp_path / index).write_text('{"checkpoints": [{"name"')  # cut short
    with pytest.raises(ValueError, match=r"The checkpoint index .* is damaged"):
        run(tmp_path, 2)
    assert not (tmp_path / LOCK).exists()


@pytest.mark.slow
@STORES
def test_a_deleted_index_is_refused_not_trained_over(tmp_path):
    run(tmp_path, 2)
    index = (
        "checkpoint" if keras.config.backend() == "tensorflow" else "checkpoint.json"
    )
    os.remove(tmp_path / index)
    with pytest.raises(
        ValueError, match=r"holds checkpoints \(ckpt-3, ckpt-6\) but not their index"
    ):
        run(tmp_path, 3)
    # Nothing was written over them, and no index names a new run.
    assert not (tmp_path / index).exists()
    assert {os.path.basename(p).split(".")[0] for p in files_of_run(tmp_path)} == {
        "ckpt-3",
        "ckpt-6",
    }


@pytest.mark.slow
@STORES
def test_fallback_in_a_relative_directory_keeps_the_index_inside_it(
    tmp_path, monkeypatch
):
    # The index names checkpoints relative to its directory: after a damaged
    # one is taken out, the rotation must delete the run's own old
    # checkpoints, never files of the same name elsewhere.
    monkeypatch.chdir(tmp_path)
    for name in ("ckpt-6.index", "ckpt-6.data-00000-of-00001", "ckpt-6"):
        (tmp_path / name).write_text("not the run's")
    run("run", 3, max_to_keep=2)
    damage(os.path.join("run", "ckpt-9"), "truncate")
    with pytest.warns(UserWarning, match="restoring run/ckpt-6"):
        _, manager, history = run("run", 4, max_to_keep=2)
    assert history.epoch == [2, 3]
    assert [os.path.basename(p) for p in manager.checkpoints] == ["ckpt-9", "ckpt-12"]
    for name in ("ckpt-6.index", "ckpt-6.data-00000-of-00001", "ckpt-6"):
        assert (tmp_path / name).read_text() == "not the run's"
    assert not glob.glob(os.path.join("run", "ckpt-6*"))  # rotated out
    if keras.config.backend() == "tensorflow":
        assert ".." not in (tmp_path / "run" / "checkpoint").read_text()


FAILED_START = """
import sys

import keras
import numpy as np

from keras_blocks.callbacks import CheckpointManager


def refuse(logs=None):
    raise ValueError("a later callback refuses to start")


model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
model.compile("adam", loss="mse")
refusal = keras.callbacks.LambdaCallback(on_train_begin=refuse)
model.fit(
    np.ones((4, 6)),
    np.ones((4, 2)),
    verbose=0,
    callbacks=[CheckpointManager(sys.argv[1], verbose=0), refusal],
)
"""


@pytest.mark.slow
@pytest.mark.backend_independent(
    reason="the lock file and Keras' callback order: Python's, under any backend"
)
def test_a_start_that_failed_leaves_no_lock(tmp_path):
    # Keras calls no `on_train_end` when a later callback's `on_train_begin`
    # raises: the process ends holding the lock it took (issue 27).
    result = subprocess.run(
        [sys.executable, "-c", FAILED_START, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "a later callback refuses to start" in result.stderr
    assert result.returncode == 1
    assert os.listdir(tmp_path) == []  # it wrote nothing else either
    # So the next run starts there without taking a stale lock over.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Keras' PyTorch variables under NumPy 2, in `save_weights`: not ours.
        warnings.filterwarnings(
            "ignore", "__array__ implementation doesn't accept a copy keyword"
        )
        assert run(tmp_path, 1)[2].epoch == [0]
