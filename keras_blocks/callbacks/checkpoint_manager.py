"""Checkpoints that resume training exactly: weights, optimizer, epoch, callbacks."""

import hashlib
import math
import os
import secrets
import shutil
import tempfile
import time
import warnings

import keras

from keras_blocks import _compat
from keras_blocks import _validation as check
from keras_blocks.callbacks import (
    _callback_state,
    _checkpoint_store,
    _directory_lock,
    _monitor,
)
from keras_blocks.distribute.cluster import current_cluster


@keras.saving.register_keras_serializable(package="keras_blocks")
class CheckpointManager(keras.callbacks.Callback):
    """Saves training state as it goes and resumes from it at the next `fit`.

    A checkpoint holds the model's weights, the optimizer's state (slots and
    iteration count), the random-generator states of layers such as dropout,
    the number of epochs and batches done, and the state of the other stateful
    callbacks in the same `fit`: `keras_blocks`' `ReduceLROnPlateau` (through
    its `get_state`/`set_state`, as any callback with those methods), the
    counters and best values of Keras' `EarlyStopping` and
    `ReduceLROnPlateau`, and `EarlyStopping`'s best weights (with
    `restore_best_weights=True`). The other callbacks are found on the
    `CallbackList` that calls this one; `callbacks` names them where there is
    none (a custom loop, a callback that wraps this one). At the start of
    training the latest checkpoint is restored and `fit` goes on from the
    epoch after it: after a crash at the end of epoch 6, `fit(epochs=10)` runs
    epochs 7 to 10. `epochs` therefore counts from the start of the run, as
    with Keras' `BackupAndRestore`. A run that a callback ended early
    (`EarlyStopping`) is complete, as one that ran all its epochs: run again,
    it trains no further.

    On the TensorFlow backend the checkpoints are `tf.train.Checkpoint`s kept
    by a `tf.train.CheckpointManager`. On JAX and PyTorch, whose variables
    `tf.train.Checkpoint` cannot track, they are Keras weight files
    (`model.weights.h5`, which holds the optimizer too) in `ckpt-<step>`
    folders, under the same rules. Either way a checkpoint only counts once
    the directory's index names it, and the index is replaced atomically: a
    crash while a checkpoint is written leaves the previous one complete and
    the latest.

    Each checkpoint records the size and SHA-256 of its files in a manifest,
    written before the index names it, and they are checked before a restore
    (which costs reading the checkpoint once more at each save and restore).
    With `restore="latest"`, a damaged checkpoint (a truncated, altered or
    missing file) is skipped with a warning that names it, the newest intact
    one is restored, and the damaged ones leave the index, so that the
    rotation never deletes an intact checkpoint and keeps a damaged one. While
    it trains, the manager holds a lock file (`checkpoint.lock`, with its pid
    and host) in `directory`, so that a second process cannot train into the
    same directory; the lock of a process that no longer runs on this host is
    taken over with a warning. A `fit` that raises (Keras then calls no
    `on_train_end`) keeps its lock until the process ends, which releases it.
    A save that fails (disk full, permission lost) raises an `OSError` that
    names the directory, and the previous checkpoint stays the latest.

    Trained by several processes (TensorFlow's `MultiWorkerMirroredStrategy`,
    JAX processes of `keras.distribution`, a PyTorch DDP group; see
    `keras_blocks.distribute.current_cluster`), only the chief writes to
    `directory` and holds its lock. On TensorFlow, where every worker must
    take part in a save (reading some distributed variables is a collective
    operation), the other workers save into a temporary directory of their
    own that they delete at once; on JAX and PyTorch they do not save. Every
    process restores from `directory`, which must therefore be on a
    filesystem that all of them see: at the start of training the chief
    leaves a marker there, and a process that cannot see it stops training
    with a `ValueError` on every process, rather than starting over alone.
    The processes also check that they restored the same checkpoint. A
    checkpoint holds one copy of each variable, whatever the number of
    replicas, so a run saved on 2 replicas resumes on 1 and the reverse.

    For a run to resume bit for bit, its random draws must not depend on how
    many epochs ran in this process: pass `seed`, which re-seeds Python,
    NumPy and the backend (`keras.utils.set_random_seed(seed + epoch)`) at
    the start of each epoch, so shuffling and dropout depend on the epoch
    only. On TensorFlow, also enable op determinism
    (`tf.config.experimental.enable_op_determinism()`).

    Args:
        directory: str or path. Where checkpoints go; created if missing.
            Best-model checkpoints go to its `best` subfolder.
        max_to_keep: int. How many recent checkpoints to keep.
        keep_checkpoint_every_n_hours: float or None. Also keep, for good,
            one checkpoint every this many hours of training.
        save_freq: `"epoch"` or int. Save at the end of each epoch, or every
            this many batches. A run resumed from a checkpoint taken during an
            epoch starts that epoch again from the restored state.
        monitor: str or None. A logged metric (such as `"val_accuracy"`):
            when it improves at the end of an epoch, the model is also saved
            in `directory/best`, apart from the rolling checkpoints.
        mode: str. `"min"`, `"max"` or `"auto"` for `monitor`.
        restore: `"latest"`, None or a checkpoint path. What to restore at
            the start of training. A checkpoint path names one checkpoint
            (`.../best/ckpt-42`, as `best_checkpoint` gives it); a folder of
            checkpoints is refused with the paths it holds. None refuses to
            train in a directory that already holds another run's
            checkpoints, rather than mixing runs.
        seed: int or None. Re-seed all random generators with `seed + epoch`
            at the start of each epoch (see above).
        callbacks: list of `keras.callbacks.Callback` or None. The callbacks
            whose state the checkpoints keep. None finds the other callbacks
            of the `fit` that calls this one, and warns when it finds none
            (no `CallbackList` calls this callback). Not part of `get_config`:
            callbacks are objects of a run, and a manager made from a config
            finds them.
        verbose: int. 0 is silent, 1 reports restores, 2 also every save.

    Raises:
        ValueError: on an invalid argument or an unwritable `directory`; at the
            start of training, when the directory holds checkpoints that
            `restore=None` would start over, checkpoints of another backend,
            a checkpoint that does not fit the model (another architecture),
            a damaged or missing index or only damaged checkpoints, when the
            `restore` path is damaged, when the directory cannot be created,
            when another running process holds the directory's lock, or,
            trained by several processes, when one of them cannot see the
            chief's `directory` or restored another checkpoint.
        OSError: when a checkpoint cannot be written (disk full, permission
            lost); the previous checkpoint stays the latest.

    Examples:
    >>> import tempfile
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", loss="mse")
    >>> directory = tempfile.mkdtemp()
    >>> x, y = np.ones((8, 3)), np.zeros((8, 1))
    >>> _ = model.fit(x, y, epochs=2, verbose=0,
    ...               callbacks=[CheckpointManager(directory, verbose=0)])
    >>> history = model.fit(x, y, epochs=3, verbose=0,
    ...                     callbacks=[CheckpointManager(directory, verbose=0)])
    >>> history.epoch  # epochs 0 and 1 were restored, not run again
    [2]
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        max_to_keep: int = 5,
        keep_checkpoint_every_n_hours: float | None = None,
        save_freq: str | int = "epoch",
        monitor: str | None = None,
        mode: str = "auto",
        restore: str | os.PathLike | None = "latest",
        seed: int | None = None,
        callbacks: list | tuple | None = None,
        verbose: int = 1,
    ) -> None:
        super().__init__()
        self.directory = _check_directory(directory)
        self.max_to_keep = check.positive_int("max_to_keep", max_to_keep)
        self.keep_checkpoint_every_n_hours = check.optional(
            check.positive_float,
            "keep_checkpoint_every_n_hours",
            keep_checkpoint_every_n_hours,
        )
        if save_freq != "epoch":
            if not check._is_int(save_freq) or save_freq <= 0:
                raise ValueError(
                    "Invalid value for argument `save_freq`. Expected 'epoch' or "
                    f"a strictly positive integer. Received: save_freq={save_freq!r}"
                )
            save_freq = int(save_freq)
        self.save_freq = save_freq
        self.monitor = None if monitor is None else _monitor.check_monitor(monitor)
        self.mode = check.one_of("mode", mode, _monitor.MODES)
        if restore is not None and restore != "latest":
            if not isinstance(restore, (str, os.PathLike)):
                raise ValueError(
                    "Invalid value for argument `restore`. Expected 'latest', "
                    f"None or a checkpoint path. Received: restore={restore!r}"
                )
            restore = os.fspath(restore)
        self.restore = restore
        self.seed = check.optional(check.non_negative_int, "seed", seed)
        if callbacks is not None:
            if not isinstance(callbacks, (list, tuple)) or not all(
                isinstance(c, keras.callbacks.Callback) for c in callbacks
            ):
                raise ValueError(
                    "Invalid value for argument `callbacks`. Expected None or a "
                    "list of `keras.callbacks.Callback` instances. "
                    f"Received: callbacks={callbacks!r}"
                )
            callbacks = tuple(callbacks)
        self.callbacks = callbacks
        if verbose not in (0, 1, 2) or isinstance(verbose, bool):
            raise ValueError(
                "Invalid value for argument `verbose`. Expected 0, 1 or 2. "
                f"Received: verbose={verbose!r}"
            )
        self.verbose = int(verbose)
        self._mode = _monitor.resolve_mode(self.monitor or "loss", self.mode)
        self._store = None
        self._best_store = None
        self._owns_directory = (
            False  # whether it wrote or restored the latest checkpoint
        )
        self._pending_states = None
        self._siblings = ()
        self._lock = None
        self._cluster = None
        self._scratch = None  # a non-chief TensorFlow worker's save directory
        self._scratch_store = None
        self._final_weights = None
        self._save_due = False
        self._epoch_start_step = 0
        self.epoch = 0  # epochs done
        self.step = 0  # batches done
        self.best = None if self.monitor is None else _monitor.initial_best(self._mode)

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self):
        # `callbacks` is left out: callbacks are objects of a run, not
        # configuration; a manager made from a config discovers them.
        return {
            "directory": self.directory,
            "max_to_keep": self.max_to_keep,
            "keep_checkpoint_every_n_hours": self.keep_checkpoint_every_n_hours,
            "save_freq": self.save_freq,
            "monitor": self.monitor,
            "mode": self.mode,
            "restore": self.restore,
            "seed": self.seed,
            "verbose": self.verbose,
        }

    @property
    def checkpoints(self):
        """The rolling checkpoints, oldest first (empty before training)."""
        return [] if self._store is None else self._store.checkpoints

    @property
    def latest_checkpoint(self):
        return None if self._store is None else self._store.latest

    @property
    def best_checkpoint(self):
        return None if self._best_store is None else self._best_store.latest

    # Training events.

    def on_train_begin(self, logs=None):
        model = self.model
        if model.optimizer is None:
            raise ValueError(
                "CheckpointManager needs a compiled model: call `model.compile()` "
                "before `fit()`."
            )
        if not model.optimizer.built:
            # Slot variables must exist for a restore to fill them.
            model.optimizer.build(model.trainable_variables)
        backend = keras.config.backend()
        other = _checkpoint_store.index_written_by_other_backend(
            self.directory, backend
        )
        if other:
            raise ValueError(
                f"The directory {self.directory} holds checkpoints of another "
                f"Keras backend ({other}); this backend ({backend}) cannot read "
                "them. Resume with the backend that wrote them, or choose "
                "another `directory`."
            )
        self._cluster = current_cluster(model)
        if not self._cluster.is_chief:
            shutil.rmtree(self._scratch_directory(), ignore_errors=True)
        if self._cluster.is_chief:
            try:
                os.makedirs(self.directory, exist_ok=True)
            except OSError as error:
                error = ValueError(
                    "CheckpointManager cannot create its directory "
                    f"{self.directory} ({error.strerror or error}). Choose a "
                    "writable `directory`."
                )
                self._check_cluster_directory(error)
                raise error from None
            self._lock = _directory_lock.acquire_lock(self.directory)
        try:
            self._check_cluster_directory()
            self._begin(model, backend)
            self._check_same_restore()
        except BaseException:
            self._release_lock()
            raise

    def _begin(self, model, backend):
        store = _checkpoint_store.store_for(backend)
        self._store = store(
            self.directory, model, self.max_to_keep, self.keep_checkpoint_every_n_hours
        )
        if self.monitor is not None:
            self._best_store = store(
                os.path.join(self.directory, "best"), model, 1, None
            )
        self._siblings = self._find_siblings()
        self._save_due = False
        self._final_weights = None
        self._pending_states = None  # from a `fit` of this instance that raised
        _compat.set_initial_epoch(model, None)

        path = self._checkpoint_to_restore()
        if path is None:
            return
        state = self._store.read_state(path)
        _check_fits(path, state, model)
        try:
            self._store.restore(path)
        except (AssertionError, ValueError) as error:
            raise ValueError(
                f"The checkpoint {path} does not fit this model: {error}"
            ) from error
        self.epoch, self.step = state["epoch"], state["step"]
        if self.monitor is not None and state.get("best") is not None:
            self.best = state["best"]
        self._pending_states = (state["callbacks"], self._store.read_arrays(path))
        # `fit` resumes from the checkpoint's epoch, as under Keras'
        # `BackupAndRestore`. A run that a callback stopped trains no further,
        # as one that ran all its epochs.
        _compat.set_initial_epoch(model, self.epoch)
        if state.get("stopped"):
            epochs = (self.params or {}).get("epochs", self.epoch)
            _compat.set_initial_epoch(model, max(self.epoch, epochs))
        self._owns_directory = True
        if self.verbose:
            stopped = ", stopped by a callback" if state.get("stopped") else ""
            print(
                f"CheckpointManager: restored {path} ({_count(self.epoch, 'epoch')}, "
                f"{_count(self.step, 'batch', 'batches')} done{stopped})."
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._save_if_due()
        self._restore_callback_states()
        self._epoch_start_step = self.step
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed + epoch)

    @property
    def async_safe(self):
        """Whether Keras may run the batch hook off the training loop's thread.

        With `save_freq="epoch"` the hook only counts batches, and Keras
        waits for every batch hook before `on_epoch_end`; running it
        asynchronously spares the JAX and PyTorch loops from waiting for each
        batch's logs before starting the next.
        """
        return self.save_freq == "epoch"

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last batch done in this epoch: with
        # `steps_per_execution` > 1, Keras calls back every few batches. Run
        # asynchronously (async_safe), the calls may finish out of order.
        previous = self.step
        self.step = max(previous, self._epoch_start_step + batch + 1)
        if self.save_freq != "epoch" and (
            self.step // self.save_freq > previous // self.save_freq
        ):
            self._save(self._store)

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = epoch + 1
        self._final_weights = None
        if self.monitor is not None:
            current = _monitor.read(logs, self.monitor, "CheckpointManager")
            if current is not None and _monitor.improved(
                current, self.best, self._mode
            ):
                self.best = current
                self._save(self._best_store)
        # Saved once every callback's `on_epoch_end` has run (at the next
        # epoch's start or the end of training), so that the checkpoint holds
        # their decisions for this epoch, such as a learning-rate reduction.
        self._save_due = self.save_freq == "epoch"
        epochs = (self.params or {}).get("epochs", math.inf)  # None: no `fit`
        last = self.model.stop_training or self.epoch >= epochs
        if self._save_due and last and self._best_weights_callbacks():
            # An `EarlyStopping` before this callback puts its best weights
            # in the model in its `on_train_end`, before the last save: that
            # save must hold the weights training reached.
            self._final_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        try:
            model = self.model
            if self._save_due and self._final_weights is not None:
                current = model.get_weights()
                model.set_weights(self._final_weights)
                try:
                    self._save_if_due()
                finally:
                    model.set_weights(current)
            self._save_if_due()
            if self._pending_states is not None:
                # The run was already complete and no epoch began: restore
                # the states now, and put the best weights in the model for
                # an `EarlyStopping` whose `on_train_end` has already run.
                self._restore_callback_states()
                for callback in self._best_weights_callbacks():
                    if callback.best_weights is not None:
                        model.set_weights(callback.best_weights)
            _compat.set_initial_epoch(model, None)
        finally:
            self._final_weights = None
            self._release_lock()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = self._scratch_store = None

    def _best_weights_callbacks(self):
        return [
            c
            for c in self._siblings
            if isinstance(c, keras.callbacks.EarlyStopping) and c.restore_best_weights
        ]

    def _release_lock(self):
        if self._lock is not None:
            _directory_lock.release_lock(self._lock)
            self._lock = None

    def _find_siblings(self):
        if self.callbacks is not None:
            return [c for c in self.callbacks if c is not self]
        siblings = _callback_state.sibling_callbacks(self)
        if siblings is None:
            warnings.warn(
                "CheckpointManager found no `keras.callbacks.CallbackList` "
                "calling it (a custom training loop, or a callback that wraps "
                "it), so it cannot see the other callbacks: their state, such "
                "as EarlyStopping's or ReduceLROnPlateau's, will not be saved. "
                "Pass `callbacks=[...]`, the callbacks whose state it should "
                "keep (`callbacks=()` for none).",
                stacklevel=3,
            )
            return []
        return siblings

    def _restore_callback_states(self):
        # Done after every callback's `on_train_begin` has run: Keras'
        # callbacks reset their counters there.
        if self._pending_states is not None:
            _callback_state.set_callback_states(self._siblings, *self._pending_states)
            self._pending_states = None

    def _save_if_due(self):
        if self._save_due:
            self._save_due = False
            self._save(self._store)

    # Clusters.

    def _check_cluster_directory(self, error=None):
        """Stops every process unless all of them see the chief's `directory`.

        The chief leaves a marker file there and sends its name; each process
        looks for it. Collective: every process calls it once, at the start
        of training (the chief with the `error` that stops it, if any).
        """
        cluster = self._cluster
        if cluster.process_count == 1:
            return
        marker = None
        token = 0
        if cluster.is_chief and error is None:
            token = secrets.randbits(30)  # travels as a 32-bit integer on JAX
            marker = os.path.join(self.directory, f".cluster-check-{token}")
            with open(marker, "w"):
                pass
        # Round 1: the chief's token (0 when it failed), the others' zeros.
        token = int(cluster.all_gather([token], "int64").max())
        if token == 0:
            if error is not None:
                return
            raise ValueError(
                "CheckpointManager: the chief process could not set up "
                f"{self.directory}; its error message says why."
            )
        seen = os.path.exists(os.path.join(self.directory, f".cluster-check-{token}"))
        # Round 2: who sees the marker.
        seen = cluster.all_gather([seen], "int64")[:, 0]
        if marker is not None:
            os.remove(marker)
        blind = [index for index, flag in enumerate(seen) if not flag]
        if blind:
            raise ValueError(
                f"CheckpointManager: process(es) {blind} of {cluster.process_count} "
                "do not see the files the chief writes in its checkpoint "
                f"directory (this process was given {self.directory}): were the "
                "processes given different directories, or one on each "
                "machine's own disk? Every process restores from the chief's, "
                "so give all of them the same directory, on a filesystem that "
                "all of them share."
            )

    def _check_same_restore(self):
        """Stops every process unless all of them restored the same checkpoint."""
        cluster = self._cluster
        if cluster.process_count == 1:
            return
        steps = cluster.all_gather([self.step, self.epoch], "int64")
        if (steps != steps[0]).any():
            raise ValueError(
                "CheckpointManager: the processes restored different checkpoints "
                f"from {self.directory} (batches and epochs done, by process: "
                f"{steps.tolist()}); was a checkpoint written while they "
                "started? Start them again."
            )

    def _write_store(self, store):
        """Where this process saves: `store`, a scratch one, or nowhere (None)."""
        if self._cluster is None or self._cluster.is_chief:
            return store
        if keras.config.backend() != "tensorflow":
            return None
        # Every TensorFlow worker takes part in a save; the others' go to a
        # scratch directory that is deleted after each save.
        if self._scratch is None:
            self._scratch = self._scratch_directory()
            self._scratch_store = _checkpoint_store.TFStore(
                self._scratch, self.model, 1, None
            )
        return self._scratch_store

    def _scratch_directory(self):
        """The same path for this worker and `directory` at every start, so a
        worker removes what a killed predecessor left (`on_train_begin`)."""
        key = hashlib.sha256(os.path.abspath(self.directory).encode()).hexdigest()
        name = f"keras_blocks-worker-{self._cluster.process_index}-{key[:16]}"
        return os.path.join(tempfile.gettempdir(), name)

    # Helpers.

    def _checkpoint_to_restore(self):
        store = self._store
        latest = store.latest
        if self.restore == "latest":
            return self._latest_intact()
        if self.restore is None:
            if latest is not None and not self._owns_directory:
                raise ValueError(
                    f"The directory {self.directory} already holds checkpoints "
                    f"(latest: {latest}). Pass restore='latest' to continue that "
                    "run, or choose another `directory`; restore=None never "
                    "starts over on top of another run."
                )
            return None
        held = _checkpoint_store.checkpoints_in(self.restore, store)
        if held:  # a run's directory, or its `best` folder
            raise ValueError(
                f"Invalid value for argument `restore`. {self.restore} is a "
                f"folder of checkpoints: pass one of them ({', '.join(held)}). "
                f"Received: restore={self.restore!r}"
            )
        if not store.exists(self.restore):
            raise ValueError(
                "Invalid value for argument `restore`. Expected 'latest', None or "
                f"an existing checkpoint path. Received: restore={self.restore!r}"
            )
        problem = store.damage(self.restore)
        if problem is not None:
            raise ValueError(
                f"The checkpoint {self.restore} is damaged: {problem}. Restore "
                "another checkpoint by path, or the newest intact one of its "
                "directory with restore='latest'."
            )
        return self.restore

    def _latest_intact(self):
        """The newest checkpoint whose files match its manifest.

        Damaged newer ones leave the index (their files stay), so that the
        rotation never deletes an intact checkpoint and keeps a damaged one.
        """
        store = self._store
        damaged = {}
        for path in reversed(store.checkpoints):
            problem = store.damage(path)
            if problem is None:
                break
            damaged[path] = problem
        else:
            path = None
        if not damaged:
            return path
        listed = "; ".join(f"{p}: {problem}" for p, problem in damaged.items())
        if path is None:
            raise ValueError(
                f"Every checkpoint that {self.directory} indexes is damaged "
                f"({listed}). Restore a checkpoint kept elsewhere by path "
                "(`restore=...`), or train in another `directory`."
            )
        warnings.warn(
            f"CheckpointManager: damaged checkpoint ({listed}); restoring "
            f"{path}, the newest intact one, instead, and taking the damaged "
            "one out of the index (what is left of its files stays on disk).",
            stacklevel=4,
        )
        if self._cluster is None or self._cluster.is_chief:
            store.forget(list(damaged))
        return path

    def _save(self, store):
        model = self.model  # on JAX, reading `model` syncs the training state
        states, arrays = _callback_state.callback_states(self._siblings)
        state = {
            "epoch": self.epoch,
            "step": self.step,
            # A callback (EarlyStopping) ended the run before its last epoch.
            "stopped": bool(getattr(model, "stop_training", False)),
            "best": self.best,
            "callbacks": states,
            "weights": [list(w.shape) for w in model.weights],
            "backend": keras.config.backend(),
            "time": time.time(),
        }
        target = self._write_store(store)
        if target is None:
            return
        try:
            path = target.save(self.step, state, arrays)
        except OSError as error:
            directory = self.directory
            if store is self._best_store:
                directory = os.path.join(directory, "best")
            self._release_lock()
            raise OSError(
                f"CheckpointManager could not save a checkpoint in {directory}: "
                f"{error}. The latest checkpoint is still {store.latest}. Free "
                "space or restore write access, then run again to resume."
            ) from error
        finally:
            if target is not store:
                shutil.rmtree(self._scratch, ignore_errors=True)
        if target is not store:
            return
        self._owns_directory = True
        if self.verbose > 1:
            print(f"\nCheckpointManager: saved {path}.")


def _count(number, word, plural=None):
    return f"{number} {word if number == 1 else plural or word + 's'}"


def _check_directory(directory):
    if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
        raise ValueError(
            "Invalid value for argument `directory`. Expected a directory path. "
            f"Received: directory={directory!r}"
        )
    path = os.path.abspath(os.fspath(directory))
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            "Invalid value for argument `directory`. Expected a writable "
            f"directory path ({existing} is not a writable directory). "
            f"Received: directory={directory!r}"
        )
    return os.fspath(directory)


def _check_fits(path, state, model):
    """Compares weight shapes first, for a clear message on another architecture."""
    saved = [tuple(shape) for shape in state["weights"]]
    shapes = [tuple(w.shape) for w in model.weights]
    if saved == shapes:
        return
    if len(saved) != len(shapes):
        detail = f"it has {len(saved)} weights, the model {len(shapes)}"
    else:
        i = next(
            i for i, (a, b) in enumerate(zip(saved, shapes, strict=True)) if a != b
        )
        detail = (
            f"weight {i} ({model.weights[i].path}) has shape {shapes[i]} in the "
            f"model and {saved[i]} in the checkpoint"
        )
    raise ValueError(
        f"The checkpoint {path} does not fit this model: {detail}. It was written "
        "by another architecture; restore it into that one, or train this model "
        "in another `directory`."
    )
