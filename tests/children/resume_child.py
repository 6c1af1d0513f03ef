"""A training run that `test_resume_sigkill.py` kills and restarts.

    python tests/children/resume_child.py DIRECTORY OUTPUT.npz [--epochs N]
        [--pause-in-save EPOCH] [--straight DIRECTORY2 OUTPUT2.npz]

Trains a small ResNet of the library's blocks on scikit-learn's digits
deterministically, with `CheckpointManager` (every epoch) and `ReduceLROnPlateau` over a cosine decay
with warmup. Prints `EPOCH_END n` when epoch n (1-based) ends, and `SAVED` and
`RESTORED` lines through the manager. At the end it writes the weights and the
reducer's state to OUTPUT.npz. `--pause-in-save EPOCH` sleeps inside the save
of that epoch's checkpoint, after its files are written and before the index
names them, and prints `MID_SAVE` then, so that a kill lands in the middle of
a save. The sleep is long (the test kills the run as soon as it reads the
line, however loaded the machine) and bounded. `--straight` then trains a
new run from scratch in DIRECTORY2, never interrupted, into OUTPUT2.npz
(after `STRAIGHT`).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from sklearn.datasets import load_digits

from keras_blocks.callbacks import CheckpointManager, ReduceLROnPlateau
from keras_blocks.layers import ConvBNAct, ResidualBlock

PAUSE_SECONDS = 300.0
ENDED = [0]  # the last epoch ended (1-based); its checkpoint is saved next


def pause_in_saves(epoch):
    """Sleeps between writing epoch `epoch`'s checkpoint and indexing it, in
    either store (CheckpointManager saves an epoch's checkpoint once every
    callback's `on_epoch_end` has run: after `EPOCH_END epoch`)."""

    def announce():
        if ENDED[0] == epoch:
            print("MID_SAVE", flush=True)
            time.sleep(PAUSE_SECONDS)

    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        record = tf.train.CheckpointManager._record_state

        def paused_record(self):
            announce()
            return record(self)

        tf.train.CheckpointManager._record_state = paused_record
    else:
        from keras_blocks.callbacks import _checkpoint_store

        write = _checkpoint_store.write_atomically

        def paused_write(path, text):
            if path.endswith(_checkpoint_store.KERAS_INDEX):
                announce()
            write(path, text)

        _checkpoint_store.write_atomically = paused_write


def build():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            # The library's blocks: their branch BN statistics and stochastic
            # depth state must come back with a resume, as Keras' layers' do.
            ConvBNAct(8, 3),
            ResidualBlock(8, drop_path_rate=0.1),
            ResidualBlock(16, strides=2),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    schedule = keras.optimizers.schedules.CosineDecay(0.01, decay_steps=300)
    model.compile(
        keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train(directory, output, epochs):
    """Trains in `directory` (resuming what it holds) up to `epochs`; writes
    the weights and the reducer's state to `output`."""
    digits = load_digits()
    x = (digits.images[:600, :, :, None] / 16.0).astype("float32")
    y = digits.target[:600].astype("int32")
    model = build()
    # min_delta=0.4: the validation loss improves by 0.37 to 0.54 in the
    # second epoch and 0.28 to 0.39 in the third (by backend), so the schedule
    # is reduced by the third epoch everywhere, within the test's 4.
    reducer = ReduceLROnPlateau(
        "val_loss", factor=0.5, patience=1, min_delta=0.4, warmup_steps=10
    )

    def epoch_end(epoch, logs=None):
        ENDED[0] = epoch + 1
        print(f"EPOCH_END {epoch + 1}", flush=True)

    progress = keras.callbacks.LambdaCallback(on_epoch_end=epoch_end)
    manager = CheckpointManager(directory, max_to_keep=2, seed=1, verbose=2)
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=epochs,
        validation_split=0.2,
        verbose=0,
        callbacks=[manager, reducer, progress],
    )
    np.savez(output, *model.get_weights(), reducer=json.dumps(reducer.get_state()))
    print("DONE", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("output")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--pause-in-save", type=int, metavar="EPOCH")
    parser.add_argument("--straight", nargs=2, metavar=("DIRECTORY", "OUTPUT"))
    args = parser.parse_args(argv)
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    else:
        # Keras' set_random_seed imports TensorFlow, where it can, to seed it
        # too: a fifth of each PyTorch run. Nothing here uses TensorFlow on
        # the other backends (the manager writes its own store there), so it
        # is not importable at all.
        sys.modules["tensorflow"] = None
    if args.pause_in_save is not None:
        pause_in_saves(args.pause_in_save)
    train(args.directory, args.output, args.epochs)
    if args.straight:
        # The reference: a new run from scratch, never interrupted, after a
        # cleared session (Keras' layer names start again, as in a new
        # process); a process's start costs more than the run.
        print("STRAIGHT", flush=True)
        keras.backend.clear_session()
        train(*args.straight, args.epochs)
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    # Everything the test reads is written and flushed: the interpreter's
    # teardown of TensorFlow or PyTorch (seconds of CPU, more than an epoch
    # here) reads nothing and writes nothing, so it is skipped.
    os._exit(status)
