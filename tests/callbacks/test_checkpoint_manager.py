import os
import re
import threading

import keras
import numpy as np
import pytest

from keras_blocks.callbacks import CheckpointManager, ReduceLROnPlateau
from tests.callbacks.markers import CHECKS, STORES

RNG = np.random.default_rng(0)
X = RNG.random((64, 6)).astype("float32")
Y = (X.sum(axis=1) > 3).astype("int32")


def small_model(width=16):
    """Dropout and batch norm: random draws and non-trainable state to restore."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    schedule = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=100)
    model.compile(
        keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def fit(model, callbacks, epochs, batch_size=16, **kwargs):
    return model.fit(
        X,
        Y,
        epochs=epochs,
        batch_size=batch_size,
        validation_split=0.25,
        verbose=0,
        callbacks=callbacks,
        **kwargs,
    )


def run(directory, epochs, **manager_kwargs):
    """A fresh process's view: new model and callbacks, same directory."""
    model = small_model()
    manager = CheckpointManager(directory, seed=3, verbose=0, **manager_kwargs)
    reducer = ReduceLROnPlateau("val_loss", factor=0.5, patience=1, min_delta=0.02)
    stopper = keras.callbacks.EarlyStopping("val_accuracy", patience=50)
    keras_reducer = keras.callbacks.ReduceLROnPlateau("val_accuracy", patience=40)
    history = fit(model, [manager, reducer, stopper, keras_reducer], epochs)
    return model, manager, reducer, stopper, keras_reducer, history


def assert_same_weights(a, b):
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """4 epochs, uninterrupted, keeping 2 checkpoints; tests only read it."""
    return run(tmp_path_factory.mktemp("straight"), 4, max_to_keep=2)


@pytest.mark.slow
def test_resume_is_exact(tmp_path, straight):
    first = run(tmp_path / "resumed", 2)
    assert first[-1].epoch == [0, 1]
    resumed = run(tmp_path / "resumed", 4)
    assert resumed[-1].epoch == [2, 3]  # only the missing epochs run
    assert_same_weights(straight[0], resumed[0])
    optimizer_a, optimizer_b = straight[0].optimizer, resumed[0].optimizer
    for x, y in zip(optimizer_a.variables, optimizer_b.variables, strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    # The callbacks' state went through the checkpoint.
    assert straight[2].get_state() == resumed[2].get_state()
    assert straight[2].get_state()["multiplier"] < 1  # a reduction happened
    for name in ("wait", "best"):
        assert getattr(straight[3], name) == getattr(resumed[3], name)
        assert getattr(straight[4], name) == getattr(resumed[4], name)
    assert straight[3].wait > 0 and straight[4].wait > 0
    assert (resumed[1].epoch, resumed[1].step) == (4, 12)


@pytest.mark.slow
@STORES
def test_resume_after_the_end_runs_nothing_and_extends(tmp_path):
    run(tmp_path, 2)
    _, manager, *_, history = run(tmp_path, 2)
    assert history.epoch == []
    assert manager.epoch == 2
    assert run(tmp_path, 3)[-1].epoch == [2]


@pytest.mark.slow
@STORES
def test_rotation_keeps_the_newest(straight):
    _, manager, *_ = straight
    # 48 training samples in batches of 16: 3 batches an epoch.
    assert [os.path.basename(p) for p in manager.checkpoints] == ["ckpt-9", "ckpt-12"]
    names = {
        n.split(".")[0] for n in os.listdir(manager.directory) if n.startswith("ckpt-")
    }
    assert names == {"ckpt-9", "ckpt-12"}


@pytest.mark.slow
@STORES
def test_keep_every_n_hours_keeps_rotated_ones(tmp_path):
    _, manager, *_ = run(tmp_path, 3, max_to_keep=1, keep_checkpoint_every_n_hours=1e-9)
    assert [os.path.basename(p) for p in manager.checkpoints] == ["ckpt-9"]
    names = {n.split(".")[0] for n in os.listdir(tmp_path) if n.startswith("ckpt-")}
    assert names == {"ckpt-3", "ckpt-6", "ckpt-9"}


@pytest.mark.slow
def test_save_every_n_batches_and_resume_mid_epoch(tmp_path):
    _, manager, *_ = run(tmp_path, 2, save_freq=2, max_to_keep=10)
    steps = [int(os.path.basename(p).split("-")[1]) for p in manager.checkpoints]
    assert steps == [2, 4, 6]
    # ckpt-6 was taken at epoch 1's last batch, before the epoch ended: that
    # epoch runs again from it.
    *_, history = run(tmp_path, 3, save_freq=2)
    assert history.epoch == [1, 2]


@pytest.mark.slow
@STORES
def test_best_checkpoint_is_kept_apart(tmp_path):
    _, manager, *_ = run(tmp_path, 3, monitor="val_loss", max_to_keep=1)
    assert manager.best_checkpoint is not None
    assert os.path.dirname(manager.best_checkpoint) == str(tmp_path / "best")
    assert np.isfinite(manager.best)
    # The best checkpoint restores into a fresh model, by path.
    model = small_model()
    restorer = CheckpointManager(
        tmp_path / "other", restore=manager.best_checkpoint, verbose=0
    )
    history = fit(model, [restorer], epochs=0)
    assert history.epoch == []


@pytest.mark.slow
@STORES
def test_restore_none_never_starts_over_another_run(tmp_path):
    run(tmp_path, 1)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        run(tmp_path, 2, restore=None)
    # In a new directory it trains from scratch.
    assert run(tmp_path / "new", 1, restore=None)[-1].epoch == [0]


@pytest.mark.slow
@STORES
def test_another_architecture_is_refused(tmp_path):
    run(tmp_path, 1)
    model = small_model(width=8)
    with pytest.raises(ValueError, match="does not fit this model: weight 0"):
        fit(model, [CheckpointManager(tmp_path, verbose=0)], 1)


@STORES
def test_checkpoints_of_another_backend_are_refused(tmp_path):
    other = (
        "checkpoint.json" if keras.config.backend() == "tensorflow" else "checkpoint"
    )
    (tmp_path / other).write_text("{}")
    with pytest.raises(ValueError, match="checkpoints of another Keras backend"):
        run(tmp_path, 1)


@pytest.mark.slow
@STORES
def test_a_folder_of_checkpoints_to_restore_names_them(tmp_path):
    # restore= the `best` folder got "Expected 'latest', None or an existing
    # checkpoint path" (TensorFlow), or "is damaged" (JAX, PyTorch).
    _, manager, *_ = run(tmp_path / "run", 2, monitor="val_loss", max_to_keep=2)
    folder = str(tmp_path / "run" / "best")
    with pytest.raises(ValueError) as error:
        run(tmp_path / "other", 1, restore=folder)
    assert str(error.value) == (
        f"Invalid value for argument `restore`. {folder} is a folder of "
        f"checkpoints: pass one of them ({manager.best_checkpoint}). "
        f"Received: restore={folder!r}"
    )
    folder = str(tmp_path / "run")
    with pytest.raises(ValueError) as error:
        run(tmp_path / "other", 1, restore=folder)
    assert f"pass one of them ({', '.join(manager.checkpoints)})" in str(error.value)


@STORES
def test_missing_restore_path(tmp_path):
    with pytest.raises(ValueError, match="an existing checkpoint path"):
        run(tmp_path, 1, restore=str(tmp_path / "ckpt-7"))


@CHECKS
def test_uncompiled_model(tmp_path):
    manager = CheckpointManager(tmp_path, verbose=0)
    model = small_model()
    model.optimizer = None
    manager.set_model(model)
    with pytest.raises(ValueError, match="needs a compiled model"):
        manager.on_train_begin()


@pytest.mark.backend_independent(
    reason="the names `fit` logs and the callback's warning are Keras' own"
)
def test_missing_monitor_warns_with_the_logged_ones(tmp_path):
    with pytest.warns(UserWarning, match=r"`val_f1`.*Available metrics are: accuracy"):
        run(tmp_path, 1, monitor="val_f1")


@CHECKS
def test_not_a_writable_directory(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"Invalid value for argument `directory`. Expected a writable directory "
            f"path ({blocker} is not a writable directory). "
            f"Received: directory={str(blocker / 'ckpts')!r}"
        ),
    ):
        CheckpointManager(str(blocker / "ckpts"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(max_to_keep=0),
            "Invalid value for argument `max_to_keep`. Expected a strictly positive integer. Received: max_to_keep=0",
        ),
        (
            dict(keep_checkpoint_every_n_hours=-1),
            "Invalid value for argument `keep_checkpoint_every_n_hours`. Expected a strictly positive finite number. Received: keep_checkpoint_every_n_hours=-1",
        ),
        (
            dict(save_freq="batch"),
            "Invalid value for argument `save_freq`. Expected 'epoch' or a strictly positive integer. Received: save_freq='batch'",
        ),
        (
            dict(save_freq=0),
            "Invalid value for argument `save_freq`. Expected 'epoch' or a strictly positive integer. Received: save_freq=0",
        ),
        (
            dict(mode="best"),
            "Invalid value for argument `mode`. Expected one of ('auto', 'min', 'max'). Received: mode='best'",
        ),
        (
            dict(restore=3),
            "Invalid value for argument `restore`. Expected 'latest', None or a checkpoint path. Received: restore=3",
        ),
        (
            dict(seed=-1),
            "Invalid value for argument `seed`. Expected a non-negative integer. Received: seed=-1",
        ),
        (
            dict(verbose=3),
            "Invalid value for argument `verbose`. Expected 0, 1 or 2. Received: verbose=3",
        ),
        (
            dict(callbacks=["early_stopping"]),
            "Invalid value for argument `callbacks`. Expected None or a list of `keras.callbacks.Callback` instances. Received: callbacks=['early_stopping']",
        ),
        (
            dict(monitor=""),
            "Invalid value for argument `monitor`. Expected the name of a logged metric, such as 'val_loss'. Received: monitor=''",
        ),
    ],
)
@CHECKS
def test_bad_args(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=re.escape(message)):
        CheckpointManager(tmp_path, **kwargs)


@CHECKS
def test_bad_directory():
    with pytest.raises(ValueError, match=re.escape("Received: directory=''")):
        CheckpointManager("")


@CHECKS
def test_config_round_trip(tmp_path):
    manager = CheckpointManager(
        str(tmp_path), max_to_keep=3, save_freq=10, monitor="val_loss", seed=1
    )
    config = manager.get_config()
    assert CheckpointManager.from_config(config).get_config() == config


@pytest.mark.slow
@pytest.mark.backends(
    "tensorflow", "jax", reason="PyTorch's trainer runs one step per execution"
)
def test_steps_per_execution_counts_every_batch(tmp_path):
    model = small_model()
    model.compile("adam", "sparse_categorical_crossentropy", steps_per_execution=2)
    manager = CheckpointManager(tmp_path, save_freq=3, max_to_keep=10, verbose=0)
    # 4 batches of 12 an epoch, called back every 2: at steps 2, 4, 6, 8.
    fit(model, [manager], epochs=2, batch_size=12)
    assert manager.step == 8
    steps = [int(os.path.basename(p).split("-")[1]) for p in manager.checkpoints]
    assert steps == [4, 6]  # the first callbacks after crossing 3 and 6


@pytest.mark.slow
def test_epoch_saves_count_batches_asynchronously(tmp_path):
    """With epoch saves the batch hook runs off the loop's thread where the
    backend allows it (JAX, PyTorch), and still counts every batch."""
    assert CheckpointManager(tmp_path / "a").async_safe
    assert not CheckpointManager(tmp_path / "b", save_freq=3).async_safe
    model = small_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    manager = CheckpointManager(tmp_path / "c", verbose=0)
    threads = []
    on_batch_end = manager.on_train_batch_end

    def spy(batch, logs=None):
        threads.append(threading.current_thread())
        on_batch_end(batch, logs)

    manager.on_train_batch_end = spy  # called on the instance by CallbackList
    fit(model, [manager], epochs=2, batch_size=12)  # 4 batches an epoch
    assert manager.step == 8
    assert len(threads) == 8
    off_loop = [thread is not threading.current_thread() for thread in threads]
    assert all(off_loop) == (keras.backend.backend() in ("jax", "torch"))
    assert any(off_loop) == all(off_loop)
    # Out of order, as a thread pool may finish them: the count never drops.
    manager.on_train_batch_end(1)
    assert manager.step == 8


@pytest.mark.slow
def test_mixed_precision_resumes_exactly(tmp_path):
    keras.config.set_dtype_policy("mixed_float16")  # with a LossScaleOptimizer
    straight = run(tmp_path / "straight", 3)
    run(tmp_path / "resumed", 2)
    resumed = run(tmp_path / "resumed", 3)
    assert resumed[-1].epoch == [2]
    assert_same_weights(straight[0], resumed[0])
    # The loss scale (a LossScaleOptimizer's variables) went through too.
    optimizer_a, optimizer_b = straight[0].optimizer, resumed[0].optimizer
    assert type(optimizer_b).__name__ == "LossScaleOptimizer"
    for x, y in zip(optimizer_a.variables, optimizer_b.variables, strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def run_with_best_weights(directory, epochs, stopper_first):
    """EarlyStopping keeps the weights of the highest training loss: epoch 0's."""
    model = small_model()
    manager = CheckpointManager(directory, seed=3, verbose=0)
    stopper = keras.callbacks.EarlyStopping(
        "loss", mode="max", patience=50, restore_best_weights=True
    )
    callbacks = [stopper, manager] if stopper_first else [manager, stopper]
    history = fit(model, callbacks, epochs)
    return model, stopper, history


@pytest.mark.slow
@pytest.mark.parametrize("stopper_first", [False, True])
def test_early_stopping_best_weights_resume(tmp_path, stopper_first):
    # The uninterrupted run, 5 epochs: it ends on epoch 0's weights, which
    # EarlyStopping restores (a run of 4 ends on the same ones).
    reference, stopper, reference_history = run_with_best_weights(
        tmp_path / "a", 5, stopper_first
    )
    assert stopper.best_epoch == 0
    run_with_best_weights(tmp_path / "b", 2, stopper_first)
    resumed, resumed_stopper, history = run_with_best_weights(
        tmp_path / "b", 4, stopper_first
    )
    assert history.epoch == [2, 3]
    assert resumed_stopper.best_epoch == 0
    assert_same_weights(reference, resumed)  # epoch 0's, not epoch 2's
    # Run again when complete: nothing trains, the model gets the best weights.
    again, _, history = run_with_best_weights(tmp_path / "b", 4, stopper_first)
    assert history.epoch == []
    assert_same_weights(reference, again)
    # The checkpoint holds the weights training reached, not the best ones:
    # extending the run trains on from them. Both runs end on the epoch 0
    # weights that EarlyStopping restores, so epoch 4's loss is what shows
    # where training went on from.
    extended, _, history = run_with_best_weights(tmp_path / "b", 5, stopper_first)
    assert history.epoch == [4]
    assert history.history["loss"] == reference_history.history["loss"][4:]
    assert_same_weights(reference, extended)


class Forwarding(keras.callbacks.Callback):
    """Wraps another callback, as a user's callback might: the CallbackList
    of `fit` holds this one, not the manager."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def set_model(self, model):
        super().set_model(model)
        self.inner.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.inner.set_params(params)

    def on_train_begin(self, logs=None):
        self.inner.on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self.inner.on_epoch_begin(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.inner.on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.inner.on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        self.inner.on_train_end(logs)


def run_wrapped(directory, epochs, explicit=True):
    model = small_model()
    reducer = ReduceLROnPlateau("val_loss", factor=0.5, patience=1, min_delta=0.02)
    kwargs = dict(callbacks=[reducer]) if explicit else {}
    manager = CheckpointManager(directory, seed=3, verbose=0, **kwargs)
    fit(model, [Forwarding(manager), reducer], epochs)
    return model, reducer


@pytest.mark.slow
def test_explicit_callbacks_keep_state_when_wrapped(tmp_path, straight):
    # `straight` trained as an uninterrupted `run_wrapped` does: the same
    # model, data, seeds and reducer (its EarlyStopping and Keras reducer,
    # with patience 50 and 40, never act in 4 epochs).
    straight, _, straight_reducer, *_ = straight
    run_wrapped(tmp_path, 2)
    resumed, reducer = run_wrapped(tmp_path, 4)
    assert straight_reducer.get_state()["multiplier"] < 1
    assert reducer.get_state() == straight_reducer.get_state()
    assert_same_weights(straight, resumed)


@pytest.mark.slow
def test_discovery_without_callback_list_warns(tmp_path):
    with pytest.warns(
        UserWarning,
        match=r"no `keras.callbacks.CallbackList`.*Pass `callbacks=\[...\]`",
    ):
        run_wrapped(tmp_path, 1, explicit=False)


@CHECKS
def test_explicit_callbacks_are_left_out_of_the_config(tmp_path):
    reducer = ReduceLROnPlateau("val_loss")
    manager = CheckpointManager(tmp_path, callbacks=[reducer])
    assert manager.callbacks == (reducer,)
    assert "callbacks" not in manager.get_config()
    assert CheckpointManager.from_config(manager.get_config()).callbacks is None


@pytest.mark.slow
def test_a_run_early_stopping_ended_trains_no_further(tmp_path):
    # EarlyStopping ends the run at epoch 1 (the highest loss was epoch 0's);
    # run again, as after a crash at the end, it stays ended on the best
    # weights, as the uninterrupted run did.
    def once():
        model = small_model()
        stopper = keras.callbacks.EarlyStopping(
            "loss", mode="max", patience=1, restore_best_weights=True
        )
        manager = CheckpointManager(tmp_path, seed=3, verbose=0)
        return model, fit(model, [stopper, manager], 6)

    ended, history = once()
    assert history.epoch == [0, 1]
    again, history = once()
    assert history.epoch == []
    assert_same_weights(ended, again)
