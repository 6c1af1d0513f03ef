"""Runs under `keras.distribution` on JAX that `test_distribute_jax.py` starts.

    python tests/children/distribute_child_jax.py two_devices OUTPUT [CASE ...]
    python tests/children/distribute_child_jax.py worker OUTPUT INDEX PORT [--checkpoints]

JAX's CPU devices are set before JAX starts (`JAX_NUM_CPU_DEVICES`, which the
test sets), once per process, hence a process per kind of run: `two_devices`
runs `batch_norm` then `registry` (the CASEs) in one process of 2 devices;
a part that raises writes its traceback to OUTPUT/PART.error, and the next
part runs.

- `batch_norm` (2 devices): a CNN of `ConvBNAct`, `ResidualBlock`,
  `BottleneckBlock` and `DropPath` trained with SGD on the same global batches
  on one device (`one`) and under `keras.distribution.DataParallel` over 2
  (`two`), for `drop_path_rate=0` (OUTPUT/batch_norm.npz) and 0.2
  (OUTPUT/drop_path.npz): every weight, BN moving statistics included. With
  rate 0 a third run (`half`) trains on one device on the first half of each
  global batch alone: the statistics device 0 would keep if each device
  normalized its own half. The halves differ in mean, so that they differ.
- `registry` (2 devices): under `DataParallel`, every layer of the property
  registry (its second derandomized example; the first is the smallest of
  everything) and reference models at their smallest input with 10 classes
  are built, trained one step on a global batch of 4, saved to `.keras`,
  loaded with `safe_mode=True` and predict the same batch; one JSON line per
  case on stdout. The layers are one model with an input per layer, so that
  they compile once.
- `worker`: process INDEX of 2 (`keras.distribution.initialize` on
  127.0.0.1:PORT, with the CPU devices the test gives each), `fit` under
  `DataParallel` with `ReduceLROnPlateau` and `TensorBoardImageLogger` (and
  `CheckpointManager` with `--checkpoints`) writing into OUTPUT/shared. Each
  process feeds its part of every global batch as NumPy arrays
  (`auto_shard_dataset=False`), and an audit hook records the files it opens
  for writing under OUTPUT/shared. Writes OUTPUT/workerINDEX.json and the
  trained weights to OUTPUT/workerINDEX.npz.

A worker stops itself: after `HANG_SECONDS` it prints every thread's stack
and exits (a process waiting in a collective operation that the other never
joins would otherwise wait forever, and JAX catches SIGTERM).
"""

import faulthandler
import json
import os
import sys
import time

# A worker's run took 20 to 40 s on 2 busy cores; more, under load. Before
# the test's own deadline (540 s), so that the stacks are printed.
HANG_SECONDS = 480

# batch_norm
BN_BATCH, BN_STEPS, BN_EPOCHS = 8, 2, 2
# registry
GLOBAL_BATCH = 4  # 2 per device
CLASSES = 10
# worker
PROCESSES = 2
WORKER_CLASSES, WORKER_SAMPLES, WORKER_BATCH, WORKER_EPOCHS = 4, 32, 8, 3
RATE, FACTOR = 0.1, 0.5


def bn_data():
    """(x, y) of BN_STEPS global batches whose halves differ in mean."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((BN_STEPS, 2, BN_BATCH // 2, 8, 8, 3), dtype="float32")
    x[:, 0] += 2.0  # the half device 0 holds
    y = rng.integers(0, CLASSES, (BN_STEPS, 2, BN_BATCH // 2))
    return x, y


def bn_model(drop_path_rate):
    import keras

    from keras_blocks.layers import BottleneckBlock, ConvBNAct, DropPath, ResidualBlock

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            ConvBNAct(8, 3),
            ResidualBlock(8, drop_path_rate=drop_path_rate),
            BottleneckBlock(4, strides=2, drop_path_rate=drop_path_rate),
            DropPath(drop_path_rate, seed=1),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(CLASSES),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def bn_train(drop_path_rate, distribution, x, y, batch_size):
    import keras
    import numpy as np

    keras.backend.clear_session()  # resets the distribution: set it after
    keras.distribution.set_distribution(distribution)
    model = bn_model(drop_path_rate)
    model.fit(x, y, batch_size=batch_size, epochs=BN_EPOCHS, shuffle=False, verbose=0)
    weights = {str(i): np.asarray(w) for i, w in enumerate(model.weights)}
    paths = [w.path.split("/", 1)[1] for w in model.weights]  # without the model
    keras.distribution.set_distribution(None)
    return weights, paths


def batch_norm(output):
    import jax
    import keras
    import numpy as np

    assert jax.device_count() == 2, jax.devices()
    x, y = bn_data()
    flat_x, flat_y = x.reshape(-1, 8, 8, 3), y.reshape(-1)
    half_x, half_y = x[:, 0].reshape(-1, 8, 8, 3), y[:, 0].reshape(-1)
    runs = {
        "batch_norm": 0.0,
        "drop_path": 0.2,
    }
    timings = {}
    for name, rate in runs.items():
        start = time.monotonic()
        one, paths = bn_train(rate, None, flat_x, flat_y, BN_BATCH)
        two, _ = bn_train(
            rate, keras.distribution.DataParallel(), flat_x, flat_y, BN_BATCH
        )
        timings[name] = time.monotonic() - start
        prefixed = {f"one/{k}": v for k, v in one.items()}
        prefixed.update({f"two/{k}": v for k, v in two.items()})
        if name == "batch_norm":
            half, _ = bn_train(rate, None, half_x, half_y, BN_BATCH // 2)
            prefixed.update({f"half/{k}": v for k, v in half.items()})
        np.savez(os.path.join(output, f"{name}.npz"), **prefixed)
        with open(os.path.join(output, f"{name}.json"), "w") as f:
            json.dump({"paths": paths, "seconds": timings[name]}, f)


def registry_example(name):
    """(kwargs, input shape, output shape): the registry's second example
    under derandomized Hypothesis, the same on every run."""
    import hypothesis

    from tests.layers.test_properties import REGISTRY, configurations

    found = []

    @hypothesis.settings(
        max_examples=2,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(configurations(REGISTRY[name]))
    def draw(example):
        found.append(example)

    draw()
    return found[-1]


def registry_models():
    """(model, trainer, inputs) with every layer of the registry, one input each."""
    import keras

    from tests.layers.test_properties import REGISTRY

    inputs, outputs, features = [], [], []
    for name in sorted(REGISTRY):
        kwargs, input_shape, _ = registry_example(name)
        inputs.append(keras.Input(input_shape[1:], name=f"{name}_input"))
        outputs.append(REGISTRY[name].cls(**kwargs, name=name)(inputs[-1]))
        features.append(keras.layers.GlobalAveragePooling2D()(outputs[-1]))
    model = keras.Model(inputs, outputs, name="registry")
    head = keras.layers.Dense(CLASSES)(keras.layers.Concatenate()(features))
    return model, keras.Model(inputs, head), inputs


def check_case(name, output):
    """Builds, trains a step, saves, loads and predicts one case."""
    import keras
    import numpy as np

    from keras_blocks.models import get_model, model_entry
    from tests.models.model_checks import image_shape

    keras.utils.set_random_seed(0)
    start = time.monotonic()
    if name == "layers":
        model, trainer, inputs = registry_models()
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:
        shape = image_shape(model_entry(name).min_size)  # its smallest input
        model = trainer = get_model(name, input_shape=shape, classes=CLASSES)
        inputs = model.inputs
        loss = "sparse_categorical_crossentropy"
    built = time.monotonic()
    rng = np.random.default_rng(0)
    x = [
        rng.uniform(0, 1, (GLOBAL_BATCH, *i.shape[1:])).astype("float32")
        for i in inputs
    ]
    if len(x) == 1:
        x = x[0]
    y = np.arange(GLOBAL_BATCH) % CLASSES
    # A small rate: one SGD step at 0.01 on 2 images sent EfficientNet-B0's
    # inference outputs to NaN, on one device too (BN statistics of 2 images).
    trainer.compile(keras.optimizers.SGD(1e-3), loss)
    trainer.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, verbose=0)
    trained = time.monotonic()
    path = os.path.join(output, f"{name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    saved = time.monotonic()
    ours = model.predict(x, batch_size=GLOBAL_BATCH, verbose=0)
    theirs = loaded.predict(x, batch_size=GLOBAL_BATCH, verbose=0)
    ours, theirs = keras.tree.flatten(ours), keras.tree.flatten(theirs)
    finished = time.monotonic()
    return {
        "case": name,
        "layers": sorted({type(layer).__name__ for layer in model.layers}),
        "max_difference": max(
            float(np.abs(a - b).max()) for a, b in zip(ours, theirs, strict=True)
        ),
        "finite": all(bool(np.isfinite(a).all()) for a in ours),
        "weights": len(model.weights),
        "loaded_weights": len(loaded.weights),
        # As JSON: build_config's shapes are tuples before and lists after.
        "same_config": json.dumps(loaded.get_config())
        == json.dumps(model.get_config()),
        "replicated": all(
            w.value.sharding.is_fully_replicated
            and len(w.value.sharding.device_set) == 2
            for w in loaded.weights
        ),
        "seconds": {
            "build": built - start,
            "train": trained - built,
            "save_load": saved - trained,
            "predict": finished - saved,
        },
    }


def registry(output, cases):
    import jax
    import keras

    from tests.models.model_checks import SMALLEST_FAMILY_MEMBERS

    assert jax.device_count() == 2, jax.devices()
    # By default the smallest model of each family, at its smallest input.
    for name in cases or ("layers", *SMALLEST_FAMILY_MEMBERS):
        keras.backend.clear_session()  # resets the distribution: set it after
        keras.distribution.set_distribution(keras.distribution.DataParallel())
        print(json.dumps(check_case(name, output)), flush=True)


# -- worker ---------------------------------------------------------------------


# The audit events of Python's calls that change files.
CHANGES = ("open", "os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree")


def audit_writes(directory, found):
    """Records in `found` the paths under `directory` this process opens for
    writing, creates, renames or removes (Python's own calls: h5py and
    TensorFlow open their files in C, which the event files' names show)."""
    directory = os.path.realpath(directory)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def under(path):
        try:
            return os.path.realpath(os.fsdecode(path)).startswith(directory)
        except (TypeError, ValueError):
            return False

    def hook(event, args):
        if event not in CHANGES or not args or not under(args[0]):
            return
        if event != "open":
            found.append(f"{event} {args[0]}")
            return
        mode, flags = args[1], args[2]
        if (isinstance(mode, str) and set(mode) & set("wax+")) or (
            isinstance(flags, int) and flags & write_flags
        ):
            found.append(f"open {args[0]}")

    sys.addaudithook(hook)


def worker_data(index):
    """The whole data set, and this process's part of each global batch."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (WORKER_SAMPLES, 8, 8, 1)).astype("float32")
    x[: WORKER_SAMPLES // 2] += 0.5  # halves of each batch that differ
    y = np.arange(WORKER_SAMPLES) % WORKER_CLASSES
    per_process = WORKER_BATCH // PROCESSES
    # Global batch k is rows [k * B, (k + 1) * B); process i takes its i-th
    # part, as Keras joins the parts in process order.
    part_x = x.reshape(-1, PROCESSES, per_process, 8, 8, 1)[:, index]
    part_y = y.reshape(-1, PROCESSES, per_process)[:, index]
    return x, y, part_x.reshape(-1, 8, 8, 1), part_y.reshape(-1)


def worker_model():
    import keras

    from keras_blocks.layers import ConvBNAct, ResidualBlock

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            ConvBNAct(4, 3, name="stem"),
            ResidualBlock(4, drop_path_rate=0.2),  # masks as on one device
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(WORKER_CLASSES, activation="softmax"),
        ],
        name="tiny",
    )
    model.compile(
        keras.optimizers.SGD(RATE),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def worker_callbacks(shared, x_val, y_val, checkpoints):
    from keras_blocks.callbacks import (
        CheckpointManager,
        ReduceLROnPlateau,
        TensorBoardImageLogger,
    )

    managers = [CheckpointManager(os.path.join(shared, "checkpoints"), verbose=0)]
    return [
        *(managers if checkpoints else []),
        # No epoch improves by 10: the rate halves at each epoch's end after
        # the first.
        ReduceLROnPlateau("val_loss", factor=FACTOR, patience=1, min_delta=10.0),
        TensorBoardImageLogger(
            os.path.join(shared, "logs"),
            (x_val, y_val),
            num_images=8,
            confusion_matrix_freq=1,
            activation_layers=("stem",),
            gradient_histograms=True,
            batch_size=6,
            data_format="channels_last",
        ),
    ]


def worker(output, index, port, checkpoints):
    import keras
    import numpy as np

    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    shared = os.path.join(output, "shared")
    writes = []
    audit_writes(shared, writes)
    keras.distribution.initialize(
        job_addresses=f"127.0.0.1:{port}", num_processes=PROCESSES, process_id=index
    )
    import jax

    from keras_blocks.distribute import current_cluster

    result = {"pid": os.getpid(), "devices": jax.device_count()}
    model = worker_model()
    x, y, part_x, part_y = worker_data(index)
    # Keras 3.15 shards tf.data datasets only: NumPy arrays are refused while
    # `auto_shard_dataset` is on (its default).
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    try:
        model.fit(part_x, part_y, batch_size=WORKER_BATCH // PROCESSES, verbose=0)
    except ValueError as error:
        result["numpy_refused"] = str(error)
    distribution = keras.distribution.DataParallel(auto_shard_dataset=False)
    keras.distribution.set_distribution(distribution)
    model = worker_model()  # its variables laid out by this distribution
    cluster = current_cluster(model)
    result["cluster"] = [cluster.engine, cluster.process_index, cluster.process_count]
    result["is_chief"] = cluster.is_chief
    history = model.fit(
        part_x,
        part_y,
        batch_size=WORKER_BATCH // PROCESSES,
        epochs=WORKER_EPOCHS,
        shuffle=False,
        verbose=0,
        validation_data=(part_x, part_y),
        callbacks=worker_callbacks(shared, x, y, checkpoints),
    )
    result["history"] = history.history
    result["learning_rate"] = float(np.asarray(model.optimizer.learning_rate))
    result["writes"] = sorted(set(writes))
    np.savez(
        os.path.join(output, f"worker{index}.npz"),
        *[np.asarray(w) for w in model.weights],
    )
    with open(os.path.join(output, f"worker{index}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "jax"
    command, output, *rest = sys.argv[1:]
    if command == "two_devices":
        import traceback

        parts = {
            "batch_norm": lambda: batch_norm(output),
            "registry": lambda: registry(output, rest),
        }
        for name, part in parts.items():
            try:
                part()
            except Exception:  # reported to the part's tests; the next runs
                traceback.print_exc()
                with open(os.path.join(output, f"{name}.error"), "w") as file:
                    file.write(traceback.format_exc())
        # Everything the tests read is written and closed: the interpreter's
        # teardown of JAX (seconds of CPU) is skipped. (Not in a worker, whose
        # exit takes it out of the processes' cluster.)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    elif command == "worker":
        worker(output, int(rest[0]), int(rest[1]), "--checkpoints" in rest)
    else:
        raise SystemExit(f"unknown command {command!r}")
