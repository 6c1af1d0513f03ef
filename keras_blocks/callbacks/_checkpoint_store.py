"""Where `CheckpointManager` keeps its checkpoints, one store per backend.

Both stores keep numbered checkpoints (`ckpt-<step>`) in a directory with the
same rules: the newest `max_to_keep` remain, plus one every
`keep_checkpoint_every_n_hours`; a checkpoint counts only once an index names
it, and that index is replaced atomically, so a crash while a checkpoint is
being written leaves the previous one intact and the latest.

- `TFStore` (TensorFlow backend) wraps `tf.train.Checkpoint` and
  `tf.train.CheckpointManager`, whose `checkpoint` state file is that index.
  What it saves is Keras' own variable lists (`model.weights`, the RNG
  states, `optimizer.variables`), in their order, as Keras' weight files do,
  not the object graph that `tf.train.Checkpoint(model=model)` would follow:
  that graph does not reach sublayers a layer keeps in a Python list, and
  their variables (batch normalization's moving statistics among them) would
  go unsaved without a word.
- `KerasStore` (JAX and PyTorch, whose variables `tf.train.Checkpoint` cannot
  track) writes Keras' own `.weights.h5` files (model and optimizer) into
  `ckpt-<step>.partial`, renames it to `ckpt-<step>` when complete, then
  replaces `checkpoint.json`.
"""

import json
import os
import shutil
import time

import numpy as np

TF_INDEX = "checkpoint"
KERAS_INDEX = "checkpoint.json"
PREFIX = "ckpt"


def _tf():
    try:
        import tensorflow as tf
    except ImportError as error:  # pragma: no cover - tensorflow is a dependency
        raise ImportError(
            "CheckpointManager needs TensorFlow: `pip install tensorflow`."
        ) from error
    return tf


def _write_atomically(path, text):
    partial = f"{path}.partial"
    with open(partial, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    _sync_directory(os.path.dirname(path))


def _sync_directory(path):
    descriptor = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def rng_variables(model):
    """Random-generator states (dropout's seeds), which weight files leave out."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


class TFStore:
    """`tf.train.CheckpointManager` over Keras' variable lists and a state string."""

    def __init__(self, directory, model, max_to_keep, keep_checkpoint_every_n_hours):
        tf = _tf()
        self._tf = tf
        self._state = tf.Variable("", dtype=tf.string, trainable=False)
        self._step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._checkpoint = tf.train.Checkpoint(
            weights=list(model.weights),
            optimizer=list(model.optimizer.variables),
            rng=rng_variables(model),
            state=self._state,
            step=self._step,
        )
        self._manager = tf.train.CheckpointManager(
            self._checkpoint,
            directory,
            max_to_keep=max_to_keep,
            keep_checkpoint_every_n_hours=keep_checkpoint_every_n_hours,
            step_counter=self._step,
            checkpoint_name=PREFIX,
        )

    @property
    def checkpoints(self):
        return list(self._manager.checkpoints)

    @property
    def latest(self):
        return self._manager.latest_checkpoint

    def save(self, step, state):
        self._state.assign(json.dumps(state))
        self._step.assign(step)
        return self._manager.save(checkpoint_number=step)

    def read_state(self, path):
        value = self._tf.train.load_variable(path, "state/.ATTRIBUTES/VARIABLE_VALUE")
        return json.loads(value.decode() if isinstance(value, bytes) else value)

    def restore(self, path):
        names = [name for name, _ in self._tf.train.list_variables(path)]
        # Earlier checkpoints held the object graph under "model/".
        if any(name.startswith("model/") for name in names):
            raise ValueError(
                f"The checkpoint {path} was written by an earlier keras_blocks, whose "
                "TensorFlow checkpoints missed the variables of sublayers kept "
                "in lists (the branch of every ResidualBlock and "
                "BottleneckBlock, batch normalization statistics included), so "
                "it cannot resume training exactly. Train into a new "
                "`directory`, or load its weights for fine-tuning with "
                "`tf.train.Checkpoint(model=model).restore(path)`."
            )
        status = self._checkpoint.restore(path)
        # Every variable of the model and the optimizer must get a value, and
        # every value must find its variable: another architecture fails here.
        status.assert_consumed()


class KerasStore:
    """Keras weight files in `ckpt-<step>` folders, indexed by `checkpoint.json`."""

    def __init__(self, directory, model, max_to_keep, keep_checkpoint_every_n_hours):
        self._directory = directory
        self._model = model
        self._max_to_keep = max_to_keep
        self._keep_seconds = (
            None
            if keep_checkpoint_every_n_hours is None
            else keep_checkpoint_every_n_hours * 3600
        )
        self._index = self._read_index()

    def _read_index(self):
        path = os.path.join(self._directory, KERAS_INDEX)
        if not os.path.exists(path):
            # As tf.train.CheckpointManager: hours count from the first start.
            return {"checkpoints": [], "kept": [], "last_kept_time": time.time()}
        with open(path) as file:
            return json.load(file)

    def _path(self, name):
        return os.path.join(self._directory, name)

    @property
    def checkpoints(self):
        return [self._path(entry["name"]) for entry in self._index["checkpoints"]]

    @property
    def latest(self):
        checkpoints = self.checkpoints
        return checkpoints[-1] if checkpoints else None

    def save(self, step, state):
        name = f"{PREFIX}-{step}"
        final = self._path(name)
        partial = f"{final}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        self._model.save_weights(os.path.join(partial, "model.weights.h5"))
        rng = [np.asarray(v.numpy()) for v in rng_variables(self._model)]
        np.savez(os.path.join(partial, "rng.npz"), *rng)
        _write_atomically(os.path.join(partial, "state.json"), json.dumps(state))
        if os.path.exists(final):  # left by a run that crashed before indexing it
            shutil.rmtree(final)
        os.replace(partial, final)
        _sync_directory(self._directory)

        now = time.time()
        entries = [e for e in self._index["checkpoints"] if e["name"] != name]
        entries.append({"name": name, "time": now})
        kept = list(self._index["kept"])
        last_kept = self._index["last_kept_time"]
        removed = []
        while len(entries) > self._max_to_keep:
            oldest = entries.pop(0)
            if (
                self._keep_seconds is not None
                and oldest["time"] - last_kept >= self._keep_seconds
            ):
                kept.append(oldest)
                last_kept = oldest["time"]
            else:
                removed.append(oldest["name"])
        self._index = {
            "checkpoints": entries,
            "kept": kept,
            "last_kept_time": last_kept,
        }
        _write_atomically(self._path(KERAS_INDEX), json.dumps(self._index, indent=1))
        # Deleted only once the index no longer names them.
        for old in removed:
            shutil.rmtree(self._path(old), ignore_errors=True)
        return final

    def read_state(self, path):
        with open(os.path.join(path, "state.json")) as file:
            return json.load(file)

    def restore(self, path):
        self._model.load_weights(os.path.join(path, "model.weights.h5"))
        with np.load(os.path.join(path, "rng.npz")) as rng:
            values = [rng[f"arr_{i}"] for i in range(len(rng.files))]
        for variable, value in zip(rng_variables(self._model), values, strict=True):
            variable.assign(value)


def store_for(backend):
    return TFStore if backend == "tensorflow" else KerasStore


def index_written_by_other_backend(directory, backend):
    """The index file of the other store kind, if the directory has one."""
    other = KERAS_INDEX if backend == "tensorflow" else TF_INDEX
    path = os.path.join(directory, other)
    return path if os.path.exists(path) else None
