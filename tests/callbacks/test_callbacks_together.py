"""The three callbacks in one `fit`, then resumed, as a user runs them."""

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

from keras_blocks.callbacks import (
    CheckpointManager,
    ReduceLROnPlateau,
    TensorBoardImageLogger,
)
from keras_blocks.layers import ConvBNAct, ResidualBlock

datasets = pytest.importorskip("sklearn.datasets")

DIGITS = datasets.load_digits()
X = (DIGITS.images[:320, :, :, None] / 16.0).astype("float32")
Y = DIGITS.target[:320].astype("int32")
X_VAL, Y_VAL = X[256:], Y[256:]


def train(logdir, epochs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            # The library's blocks: a resume must restore their BN statistics.
            ConvBNAct(8, 3, data_format="channels_last"),
            ResidualBlock(8, data_format="channels_last"),
            keras.layers.GlobalAveragePooling2D(data_format="channels_last"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    schedule = keras.optimizers.schedules.CosineDecay(0.02, decay_steps=100)
    model.compile(
        keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    reducer = ReduceLROnPlateau("val_loss", factor=0.5, patience=1, min_delta=1.0)
    callbacks = [
        CheckpointManager(logdir / "checkpoints", seed=0, verbose=0),
        TensorBoardImageLogger(
            logdir / "images",
            (X_VAL, Y_VAL),
            num_images=9,
            confusion_matrix_freq=1,
            data_format="channels_last",
        ),
        reducer,
    ]
    history = model.fit(
        X[:256],
        Y[:256],
        batch_size=64,
        epochs=epochs,
        validation_data=(X_VAL, Y_VAL),
        verbose=0,
        callbacks=callbacks,
    )
    return model, reducer, history


@pytest.mark.slow
def test_all_three_in_one_fit_and_resumed(tmp_path):
    straight, straight_reducer, _ = train(tmp_path / "straight", 3)
    train(tmp_path / "resumed", 2)
    model, reducer, history = train(tmp_path / "resumed", 3)
    assert history.epoch == [2]
    assert reducer.get_state() == straight_reducer.get_state()
    assert reducer.get_state()["multiplier"] == 0.25  # after epochs 1 and 2
    for a, b in zip(model.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    # Both processes' event files, read back as one run.
    events = EventAccumulator(
        str(tmp_path / "resumed" / "images"), size_guidance={"tensors": 0}
    )
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert {"images/predictions", "confusion_matrix", "learning_rate"} <= tags
    for tag in ("images/predictions", "confusion_matrix", "learning_rate"):
        assert [event.step for event in events.Tensors(tag)] == [0, 1, 2]
    # The logged rate is the scaled schedule's.
    rates = [
        float(tensor_util.make_ndarray(event.tensor_proto))
        for event in events.Tensors("learning_rate")
    ]
    # Logged before the reducer acts: epoch 2 ran at half of epoch 1's scale.
    assert rates[2] < rates[1] / 1.5
