"""Training runs under `tf.distribute` for `test_distribute_callbacks_tf.py`.

    python tests/children/distribute_child_callbacks.py worker OUTPUT INDEX PORT,PORT

and `mirrored(OUTPUT, STRATEGY)`, which distribute_child_tf.py runs in its
process of 2 logical CPUs (a strategy's devices are set before TensorFlow
starts, once per process, hence a process per kind of run). Each trains a
small CNN for 2 epochs with `TensorBoardImageLogger` (every feature at every epoch, into OUTPUT/logs) and
`ReduceLROnPlateau`, then has a logger of the same settings write the trained
weights on one device into OUTPUT/reference (through its hooks, as `fit`
calls them), for the test to compare.

- `mirrored`: `MirroredStrategy` over 2 logical CPUs; `fit` outside the
  strategy's scope, then again inside it (into OUTPUT/logs_in_scope and
  OUTPUT/reference_in_scope). Writes OUTPUT/results.json.
- `worker`: task INDEX of a `keras_blocks.distribute.MultiWorkerMirroredStrategy`
  of 2 workers on 127.0.0.1 (task 0 is the chief). First the reducer is fed
  different `val_loss` logs on each worker through its hooks
  (OUTPUT/reducerINDEX.json), then `fit` (OUTPUT/fitINDEX.json); only the
  chief writes the reference.
"""

import json
import os
import sys

# Only when run as a script: a process that imports this file keeps its
# backend.
if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CLASSES = 3
TRAIN, VAL, BATCH = 32, 12, 8
# val_loss per epoch on each worker: worker 0 improves, worker 1 does not, and
# their mean does not either (1.0, 1.25, 1.625), so a reducer with patience 1
# that reads each worker's own logs ends at 0.1 on one and 0.025 on the other.
VAL_LOSSES = ((1.0, 0.5, 0.25), (1.0, 2.0, 3.0))
RATE, FACTOR = 0.1, 0.5


def data():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((TRAIN + VAL, 8, 8, 3), dtype="float32")
    y = np.arange(TRAIN + VAL) % CLASSES
    return x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]


def build_model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(CLASSES, activation="softmax", name="head"),
        ],
        name="cnn",
    )
    model.compile(keras.optimizers.SGD(RATE), "sparse_categorical_crossentropy")
    return model


def logger(log_dir, x_val, y_val):
    from keras_blocks.callbacks import TensorBoardImageLogger

    return TensorBoardImageLogger(
        log_dir,
        (x_val, y_val),
        num_images=VAL,
        confusion_matrix_freq=1,
        activation_layers=("conv",),
        gradient_histograms=True,
        batch_size=11,  # batches of 11 and 1: fewer images than replicas
        data_format="channels_last",
    )


def reducer():
    from keras_blocks.callbacks import ReduceLROnPlateau

    # min_delta=10: the loss never improves enough, so every epoch reduces.
    return ReduceLROnPlateau("loss", factor=FACTOR, patience=1, min_delta=10.0)


def write_reference(model, log_dir, x_val, y_val):
    """The logger's summaries of `model`'s weights, computed on one device;
    returns that device's `predict` of `x_val`."""
    import keras

    one_device = build_model()  # outside any strategy's scope
    one_device.set_weights(model.get_weights())
    reference = logger(log_dir, x_val, y_val)
    reference.set_model(one_device)
    reference.set_params({"epochs": 2})
    reference.on_train_begin()
    reference.on_epoch_end(1)  # the last epoch: every feature
    reference.on_train_end()
    return keras.ops.convert_to_numpy(one_device.predict(x_val, verbose=0)).tolist()


def mirrored(output, strategy):
    """In distribute_child_tf.py's process, which splits the CPU in 2, under
    its `MirroredStrategy`."""
    x, y, x_val, y_val = data()
    with strategy.scope():
        model = build_model()
    log_dir = os.path.join(output, "logs")
    fits = [
        model.fit(
            x,
            y,
            batch_size=BATCH,
            epochs=2,
            verbose=0,
            callbacks=[logger(log_dir, x_val, y_val), reducer()],
        ).history
    ]
    predictions = [write_reference(model, f"{output}/reference", x_val, y_val)]
    with strategy.scope():  # as some scripts do: fit in the scope too
        fits.append(
            model.fit(
                x,
                y,
                batch_size=BATCH,
                epochs=2,
                verbose=0,
                callbacks=[logger(f"{log_dir}_in_scope", x_val, y_val), reducer()],
            ).history
        )
    predictions.append(
        write_reference(model, f"{output}/reference_in_scope", x_val, y_val)
    )
    results = {
        "replicas": strategy.num_replicas_in_sync,
        "histories": fits,
        "predictions": predictions,
        "final_rate": float(model.optimizer.learning_rate.numpy()),
    }
    with open(os.path.join(output, "results.json"), "w") as file:
        json.dump(results, file)


def worker(output, index, ports):
    os.environ["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
            "task": {"type": "worker", "index": index},
        }
    )
    import keras_blocks

    strategy = keras_blocks.distribute.MultiWorkerMirroredStrategy()
    x, y, x_val, y_val = data()
    with strategy.scope():
        model = build_model()
    cluster = keras_blocks.distribute.current_cluster(model)

    # The reducer fed different logs on each worker, through its hooks.
    plateau = keras_blocks.callbacks.ReduceLROnPlateau(
        "val_loss", factor=FACTOR, patience=1
    )
    plateau.set_model(model)
    plateau.on_train_begin()
    for epoch, val_loss in enumerate(VAL_LOSSES[index]):
        plateau.on_epoch_end(epoch, {"val_loss": val_loss})
    plateau.on_train_end()
    reducer_results = {
        "learning_rate": float(model.optimizer.learning_rate.numpy()),
        "best": plateau.best,
    }
    with open(os.path.join(output, f"reducer{index}.json"), "w") as file:
        json.dump(reducer_results, file)

    model.optimizer.learning_rate = RATE
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=2,
        verbose=0,
        callbacks=[logger(os.path.join(output, "logs"), x_val, y_val), reducer()],
    ).history
    results = {"pid": os.getpid(), "is_chief": cluster.is_chief, "history": history}
    if cluster.is_chief:
        results["predictions"] = write_reference(
            model, f"{output}/reference", x_val, y_val
        )
    with open(os.path.join(output, f"fit{index}.json"), "w") as file:
        json.dump(results, file)


if __name__ == "__main__":
    assert sys.argv[1] == "worker", sys.argv
    worker(sys.argv[2], int(sys.argv[3]), sys.argv[4].split(","))
