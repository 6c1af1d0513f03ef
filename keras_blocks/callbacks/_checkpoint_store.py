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

Each checkpoint also records what it must contain: a manifest (a
checkpoint's `manifest.json`, or `ckpt-<step>.manifest.json` next to a
TensorFlow one) with the size and SHA-256 of each of its files, written after
them and before the index names the checkpoint. `damage` compares the files
with it before a restore: HDF5 keeps no checksums, so a flipped byte in a
weight file would otherwise load without a word. Arrays that are not
variables (the best weights of `EarlyStopping`) go in the checkpoint's
`arrays.npz`, under the same manifest (see `_checkpoint_files`).
"""

import contextlib
import glob
import json
import os
import re
import shutil
import time

import keras
import numpy as np

from keras_blocks.callbacks._checkpoint_files import (
    ARRAYS,
    MANIFEST,
    load_arrays,
    manifest_damage,
    save_arrays,
    sync_directory,
    sync_file,
    write_atomically,
    write_manifest,
)

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


def _damaged_index(path, error):
    return (
        f"The checkpoint index {path} is damaged ({error}). The checkpoints "
        "it named are still there: restore one by path (`restore=...`) into "
        "another `directory`."
    )


def _check_not_unindexed(directory, index, pattern):
    """Refuses a directory that holds checkpoints but not their index.

    Without its index a store sees no checkpoints: the run would start over
    and overwrite them. (A process killed between writing its very first
    checkpoint and indexing it leaves one so too; it is refused the same way.)
    """
    if os.path.exists(index):
        return
    found = sorted(
        os.path.basename(path)
        for path in glob.glob(os.path.join(glob.escape(directory), pattern))
        if re.fullmatch(rf"{PREFIX}-\d+", os.path.basename(path).split(".")[0])
        and not path.endswith(".partial")
    )
    if found:
        names = sorted({name.split(".")[0] for name in found})
        raise ValueError(
            f"The directory {directory} holds checkpoints ({', '.join(names)}) "
            f"but not their index {os.path.basename(index)}: it was deleted or "
            "lost, and training here would overwrite them. Restore one by path "
            "(`restore=...`) into another `directory`, or move them away to "
            "start over."
        )


def rng_variables(model):
    """Random-generator states (dropout's seeds), which weight files leave out."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


class TFStore:
    """`tf.train.CheckpointManager` over Keras' variable lists and a state string."""

    def __init__(self, directory, model, max_to_keep, keep_checkpoint_every_n_hours):
        tf = _tf()
        self._tf = tf
        self._directory = directory
        self._max_to_keep = max_to_keep
        self._keep_hours = keep_checkpoint_every_n_hours
        self._state = tf.Variable("", dtype=tf.string, trainable=False)
        self._step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._checkpoint = tf.train.Checkpoint(
            weights=list(model.weights),
            optimizer=list(model.optimizer.variables),
            rng=rng_variables(model),
            state=self._state,
            step=self._step,
        )
        index = os.path.join(directory, TF_INDEX)
        _check_not_unindexed(directory, index, f"{PREFIX}-*.index")
        if os.path.exists(index) and tf.train.get_checkpoint_state(directory) is None:
            # TensorFlow logs the parse error and reports no checkpoints: the
            # run would start over and overwrite them.
            raise ValueError(_damaged_index(index, "it cannot be parsed"))
        self._manager = self._new_manager()

    def _new_manager(self):
        # It reads the index when created.
        return self._tf.train.CheckpointManager(
            self._checkpoint,
            self._directory,
            max_to_keep=self._max_to_keep,
            keep_checkpoint_every_n_hours=self._keep_hours,
            step_counter=self._step,
            checkpoint_name=PREFIX,
        )

    @property
    def checkpoints(self):
        return list(self._manager.checkpoints)

    @property
    def latest(self):
        return self._manager.latest_checkpoint

    def save(self, step, state, arrays):
        tf = self._tf
        prefix = os.path.join(self._directory, f"{PREFIX}-{step}")
        self._state.assign(json.dumps(state))
        self._step.assign(step)

        def record_manifest(path):
            # Run by `tf.train.Checkpoint` once the files are written and
            # before the manager's own callback indexes them.
            files = [path + ".index", *glob.glob(glob.escape(path) + ".data-*")]
            write_manifest(path + "." + MANIFEST, [*files, path + "." + ARRAYS])

        options = tf.train.CheckpointOptions(
            experimental_write_callbacks=[record_manifest]
        )
        try:
            os.makedirs(self._directory, exist_ok=True)
            save_arrays(prefix + "." + ARRAYS, arrays)
            path = self._manager.save(checkpoint_number=step, options=options)
        except tf.errors.OpError as error:
            # Disk full, permission lost: as the Keras store, an OSError.
            raise OSError(error.message) from error
        self._remove_unindexed()
        return path

    def _remove_unindexed(self):
        """Manifests and arrays of checkpoints whose files the manager deleted."""
        for name in os.listdir(self._directory):
            prefix = os.path.join(self._directory, name.split(".")[0])
            if (
                name.startswith(PREFIX + "-")
                and name.endswith(("." + MANIFEST, "." + ARRAYS))
                and not os.path.exists(prefix + ".index")
            ):
                os.remove(os.path.join(self._directory, name))

    def exists(self, path):
        suffixes = (".index", "." + MANIFEST)
        return any(os.path.exists(path + suffix) for suffix in suffixes)

    def damage(self, path):
        return manifest_damage(path + "." + MANIFEST)

    def forget(self, paths):
        """Takes `paths` out of the index, leaving the others (and their times).

        The index is TensorFlow's `CheckpointState` text; it is rewritten with
        names relative to the directory, as the manager writes them
        (`update_checkpoint_state` would write them relative to the working
        directory's view: `../ckpt-10` for a relative `directory`).
        """
        from google.protobuf import text_format

        state = self._tf.train.get_checkpoint_state(self._directory)
        kept = [
            (os.path.basename(path), time)
            for path, time in zip(
                state.all_model_checkpoint_paths,
                state.all_model_checkpoint_timestamps,
                strict=True,
            )
            if path not in paths
        ]
        del state.all_model_checkpoint_paths[:]
        del state.all_model_checkpoint_timestamps[:]
        state.all_model_checkpoint_paths.extend(name for name, _ in kept)
        state.all_model_checkpoint_timestamps.extend(time for _, time in kept)
        state.model_checkpoint_path = kept[-1][0]
        write_atomically(
            os.path.join(self._directory, TF_INDEX), text_format.MessageToString(state)
        )
        self._manager = self._new_manager()

    def read_arrays(self, path):
        return load_arrays(path + "." + ARRAYS)

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
        try:
            status = self._checkpoint.restore(path)
        except self._tf.errors.OpError as error:
            raise ValueError(f"it cannot be read ({error.message})") from error
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
        _check_not_unindexed(self._directory, path, f"{PREFIX}-*")
        if not os.path.exists(path):
            # As tf.train.CheckpointManager: hours count from the first start.
            return {"checkpoints": [], "kept": [], "last_kept_time": time.time()}
        try:
            with open(path) as file:
                return json.load(file)
        except ValueError as error:
            raise ValueError(_damaged_index(path, error)) from error

    def _path(self, name):
        return os.path.join(self._directory, name)

    @property
    def checkpoints(self):
        return [self._path(entry["name"]) for entry in self._index["checkpoints"]]

    @property
    def latest(self):
        checkpoints = self.checkpoints
        return checkpoints[-1] if checkpoints else None

    def save(self, step, state, arrays):
        name = f"{PREFIX}-{step}"
        final = self._path(name)
        partial = f"{final}.partial"
        try:
            self._write(partial, state, arrays)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        if os.path.exists(final):  # left by a run that crashed before indexing it
            shutil.rmtree(final)
        os.replace(partial, final)
        sync_directory(self._directory)

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
        write_atomically(self._path(KERAS_INDEX), json.dumps(self._index, indent=1))
        # Deleted only once the index no longer names them.
        for old in removed:
            shutil.rmtree(self._path(old), ignore_errors=True)
        return final

    def _write(self, partial, state, arrays):
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        files = [os.path.join(partial, n) for n in ("model.weights.h5", "rng.npz")]
        with _without_distribution():
            self._model.save_weights(files[0])
        rng = [np.asarray(v.numpy()) for v in rng_variables(self._model)]
        with open(files[1], "wb") as file:
            np.savez(file, *rng)
        files.append(os.path.join(partial, ARRAYS))
        save_arrays(files[-1], arrays)
        files.append(os.path.join(partial, "state.json"))
        write_atomically(files[-1], json.dumps(state))
        for path in files[:2]:  # the others were synced as written
            sync_file(path)
        write_manifest(os.path.join(partial, MANIFEST), files)

    def exists(self, path):
        return os.path.isdir(path)

    def damage(self, path):
        return manifest_damage(os.path.join(path, MANIFEST))

    def forget(self, paths):
        """Takes `paths` out of the index, leaving their folders."""
        names = {os.path.basename(path) for path in paths}
        self._index["checkpoints"] = [
            e for e in self._index["checkpoints"] if e["name"] not in names
        ]
        write_atomically(self._path(KERAS_INDEX), json.dumps(self._index, indent=1))

    def read_arrays(self, path):
        return load_arrays(os.path.join(path, ARRAYS))

    def read_state(self, path):
        with open(os.path.join(path, "state.json")) as file:
            return json.load(file)

    def restore(self, path):
        self._model.load_weights(os.path.join(path, "model.weights.h5"))
        with np.load(os.path.join(path, "rng.npz")) as rng:
            values = [rng[f"arr_{i}"] for i in range(len(rng.files))]
        for variable, value in zip(rng_variables(self._model), values, strict=True):
            variable.assign(value)


@contextlib.contextmanager
def _without_distribution():
    """No `keras.distribution` while the chief alone writes a weight file.

    Keras' `save_weights` creates a throwaway `Optimizer(1.0)` to list the
    attributes it skips (keras/src/saving/saving_lib.py; the cache meant to
    spare it is read and written under two different names in 3.15), and
    under a multi-process JAX distribution creating a variable is a
    collective step: the chief would wait in it for processes that do not
    save. The file holds the same values either way.
    """
    distribution = keras.distribution.distribution()
    if distribution is None:
        yield
        return
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(distribution)


def checkpoints_in(folder, store):
    """The checkpoints directly in `folder` as `store` finds them (its
    `ckpt-<step>` paths, by step), or [] for what is not a folder."""
    if not os.path.isdir(folder):
        return []
    steps = {
        int(match[1])
        for match in map(
            re.compile(rf"{PREFIX}-(\d+)(\..*)?$").match, os.listdir(folder)
        )
        if match
    }
    paths = (os.path.join(folder, f"{PREFIX}-{step}") for step in sorted(steps))
    return [path for path in paths if store.exists(path)]


def store_for(backend):
    return TFStore if backend == "tensorflow" else KerasStore


def index_written_by_other_backend(directory, backend):
    """The index file of the other store kind, if the directory has one."""
    other = KERAS_INDEX if backend == "tensorflow" else TF_INDEX
    path = os.path.join(directory, other)
    return path if os.path.exists(path) else None
