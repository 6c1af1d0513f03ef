"""The TensorFlow runs of tests/distribute under `MirroredStrategy` over 2
logical CPUs, in one process for three test files (logical devices are set
before TensorFlow starts, once per process: one start instead of three).

Run as `python tests/children/distribute_child_tf.py DIRECTORY [CASE ...]`;
runs, in order, each into DIRECTORY/PART:

- `blocks` (test_distribute_tf.py): the library's blocks trained with
  synchronized and unsynchronized batch normalization against one device,
  DropPath's masks, checkpoints across replica counts; writes
  DIRECTORY/blocks/results.json.
- `callbacks` (test_distribute_callbacks_tf.py):
  `distribute_child_callbacks.mirrored`.
- `registry` (test_distribute_registry_tf.py): `distribute_child_registry.main`
  for the CASEs (registry layers and models).

A part that raises writes its traceback to DIRECTORY/PART/error.txt, and the
next part runs: each test reports its own part.
"""

import json
import os
import sys
import traceback
from pathlib import Path

# Only when run as a script: a process that imports this file keeps its
# backend.
if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

if __name__ == "__main__":
    # Only the CPUs: traced under a strategy on a machine with a GPU, the
    # library's channels_first convolution would take the GPU's path on the
    # CPU devices.
    tf.config.set_visible_devices([], "GPU")
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import keras
import numpy as np

from keras_blocks import layers
from keras_blocks.callbacks import CheckpointManager
from keras_blocks.distribute import synchronize_batch_statistics

GLOBAL_BATCH = 8
STEPS = 3


def block_model(synchronized):
    inputs = keras.Input((8, 8, 3))
    x = layers.ConvBNAct(8, 3, bn_synchronized=synchronized)(inputs)
    x = layers.ResidualBlock(8, bn_synchronized=synchronized)(x)
    x = layers.BottleneckBlock(4, strides=2, bn_synchronized=synchronized)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    model.compile(
        keras.optimizers.SGD(0.1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def replica_values(model):
    """Each weight's value on each replica: (weights, replicas, ...)."""
    return [
        [np.asarray(v) for v in w.value.values]
        if hasattr(w.value, "values")
        else [np.asarray(w.value)]
        for w in model.weights
    ]


def max_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


def moving_statistics(model):
    return [i for i, w in enumerate(model.weights) if "moving" in w.path]


def measure(directory, strategy):
    """The blocks' measurements (a dict for JSON)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(GLOBAL_BATCH * STEPS, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, GLOBAL_BATCH * STEPS)
    results = {"replicas": strategy.num_replicas_in_sync}
    models = {}

    for synchronized in (True, False):
        keras.utils.set_random_seed(0)
        single = block_model(synchronized)
        start = single.get_weights()
        with strategy.scope():
            mirrored = block_model(synchronized)
        mirrored.set_weights(start)
        fit = {"batch_size": GLOBAL_BATCH, "shuffle": False, "verbose": 0}
        single.fit(x, y, epochs=1, **fit)
        mirrored.fit(x, y, epochs=1, **fit)
        per_replica = replica_values(mirrored)
        stats = moving_statistics(mirrored)
        key = "sync" if synchronized else "unsync"
        results[key] = {
            # Replica 0 against the single-device run on the same global batch.
            "weights_vs_single": max_difference(
                [values[0] for values in per_replica], single.get_weights()
            ),
            "trainable_vs_single": max_difference(
                [per_replica[i][0] for i in range(len(per_replica)) if i not in stats],
                [w for i, w in enumerate(single.get_weights()) if i not in stats],
            ),
            "statistics_across_replicas": max(
                float(np.max(np.abs(per_replica[i][0] - per_replica[i][1])))
                for i in stats
            ),
        }
        models[synchronized] = mirrored

    # DropPath: each replica draws its own masks, from the same seed.
    with strategy.scope():
        drop = layers.DropPath(0.5, seed=1)
    ones = tf.ones((64, 1))

    @tf.function
    def masks():
        return strategy.run(lambda: drop(ones, training=True))

    drawn = [
        v.numpy().ravel().tolist() for v in strategy.experimental_local_results(masks())
    ]
    results["drop_path_same_masks"] = drawn[0] == drawn[1]

    # Checkpoints do not depend on the number of replicas: 2 -> 1 ...
    for synchronized, key in ((True, "two_to_one"), (False, "two_to_one_unsync")):
        two = os.path.join(directory, key)
        models[synchronized].fit(
            x,
            y,
            batch_size=GLOBAL_BATCH,
            epochs=2,
            verbose=0,
            callbacks=[CheckpointManager(two, verbose=0)],
        )
        one_device = block_model(synchronized)
        one_device.fit(
            x[:8],
            y[:8],
            epochs=2,
            verbose=0,
            callbacks=[CheckpointManager(two, verbose=0)],
        )
        results[key] = max_difference(
            one_device.get_weights(), models[synchronized].get_weights()
        )
    # ... and 1 -> 2, where every replica gets the restored values.
    one = os.path.join(directory, "one")
    one_device.fit(
        x,
        y,
        batch_size=GLOBAL_BATCH,
        epochs=1,
        verbose=0,
        callbacks=[CheckpointManager(one, verbose=0)],
    )
    with strategy.scope():
        restored = block_model(True)
    restored.fit(
        x[:8], y[:8], epochs=1, verbose=0, callbacks=[CheckpointManager(one, verbose=0)]
    )
    results["one_to_two"] = max(
        max_difference(
            [values[r] for values in replica_values(restored)], one_device.get_weights()
        )
        for r in range(2)
    )
    # Unsynchronized statistics averaged over the replicas, as at an epoch's end.
    unsync = models[False]
    stats = moving_statistics(unsync)
    before = replica_values(unsync)
    results["synchronized_layers"] = synchronize_batch_statistics(unsync)
    after = replica_values(unsync)
    results["averaged"] = max(
        float(np.max(np.abs(after[i][r] - (before[i][0] + before[i][1]) / 2)))
        for i in stats
        for r in range(2)
    )
    return results


def blocks(directory, strategy):
    results = measure(directory, strategy)
    with open(os.path.join(directory, "results.json"), "w") as file:
        json.dump(results, file)


def callbacks(directory, strategy):
    from tests.children import distribute_child_callbacks

    distribute_child_callbacks.mirrored(directory, strategy)


def registry(directory, strategy, cases):
    from tests.children import distribute_child_registry

    with open(os.path.join(directory, "results.jsonl"), "w") as file:
        distribute_child_registry.main(directory, strategy, cases, file)


if __name__ == "__main__":
    directory, cases = Path(sys.argv[1]), sys.argv[2:]
    # One strategy for every part: each instance numbers its collective
    # operations from the same start, and a second one's all-reduce met the
    # first one's ("Shape mismatch in the collective instance 100").
    strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    parts = {
        "blocks": blocks,
        "callbacks": callbacks,
        "registry": lambda path, strategy: registry(path, strategy, cases),
    }
    for name, part in parts.items():
        path = directory / name
        path.mkdir(parents=True, exist_ok=True)
        try:
            part(str(path), strategy)
        except Exception:  # reported to the part's tests; the next part runs
            traceback.print_exc()
            (path / "error.txt").write_text(traceback.format_exc())
    # Everything the tests read is written and closed: the interpreter's
    # teardown of TensorFlow (seconds of CPU) is skipped.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
