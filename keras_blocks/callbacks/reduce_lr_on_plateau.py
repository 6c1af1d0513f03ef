"""Learning-rate reduction on a plateau that also scales learning-rate schedules."""

import keras

from keras_blocks import _compat
from keras_blocks import _validation as check
from keras_blocks.callbacks import _monitor
from keras_blocks.callbacks.scaled_schedule import ScaledSchedule
from keras_blocks.distribute import current_cluster


@keras.saving.register_keras_serializable(package="keras_blocks")
class ReduceLROnPlateau(keras.callbacks.Callback):
    """Reduces the learning rate when a metric has stopped improving.

    Keras' `ReduceLROnPlateau`, with the same arguments, extended to every kind
    of learning rate. With a float (a variable) it multiplies the rate by
    `factor`, as Keras does. With a `LearningRateSchedule`, where Keras raises
    `TypeError`, it wraps the schedule in a `ScaledSchedule` and multiplies
    that: cosine decay or a warmup keep their shape and the plateau scales
    them. An optional linear warmup ramps any learning rate up from zero over
    the first `warmup_steps` optimizer steps.

    The state (`best`, `wait`, `cooldown_counter`, `multiplier`) is saved and
    restored by `keras_blocks.callbacks.CheckpointManager` in the same `fit`,
    through `get_state` and `set_state`. The schedule wrapper stays on the
    optimizer after training, so the reduction carries over to the next `fit`
    and into a saved `.keras` model, as a reduced float learning rate does.

    When several processes train the model
    (`keras_blocks.distribute.current_cluster(model).process_count > 1`),
    each decides on the mean of the monitored value over the processes,
    gathered at every epoch's end (a collective operation, so every process
    must call `on_epoch_end` there), so that all take the same decisions even
    where each logs its own value, as a PyTorch DDP loop may; TensorFlow's
    multi-worker `fit` logs values already averaged over its workers.

    Args:
        monitor: str. The logged metric to watch, such as `"val_loss"`.
        factor: float in (0, 1). The learning rate is multiplied by it at
            each reduction.
        patience: int. Epochs without improvement before a reduction.
        verbose: int. 0 is silent, 1 prints a message at each reduction.
        mode: str. `"min"`, `"max"` or `"auto"` (`"max"` for accuracy-like
            names, `"min"` otherwise).
        min_delta: float. The smallest change that counts as improvement.
        cooldown: int. Epochs after a reduction during which no other
            reduction happens and `wait` stays 0.
        min_lr: float. A floor: no reduction takes the learning rate below
            it. With a schedule, the multiplier stops where the scaled rate
            at the current step would fall below `min_lr`.
        warmup_steps: int. Optimizer steps (counted by `optimizer.iterations`,
            so a resumed run carries on) of linear warmup; 0 for none.

    Raises:
        ValueError: on an invalid argument, or at the start of training when
            the optimizer's learning rate is a callable that is not a
            `LearningRateSchedule`.

    Examples:
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> schedule = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=100)
    >>> model.compile(keras.optimizers.SGD(schedule), loss="mse")
    >>> reducer = ReduceLROnPlateau("loss", factor=0.5, patience=1)
    >>> x, y = np.ones((8, 3)), np.zeros((8, 1))
    >>> _ = model.fit(x, y, epochs=2, verbose=0, callbacks=[reducer])
    >>> sorted(reducer.get_state())
    ['best', 'cooldown_counter', 'multiplier', 'wait']
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        warmup_steps: int = 0,
    ) -> None:
        super().__init__()
        self.monitor = _monitor.check_monitor(monitor)
        self.factor = check.open_fraction("factor", factor)
        self.patience = check.positive_int("patience", patience)
        self.verbose = _check_verbose(verbose)
        self.mode = check.one_of("mode", mode, _monitor.MODES)
        self.min_delta = check.non_negative_float("min_delta", min_delta)
        self.cooldown = check.non_negative_int("cooldown", cooldown)
        self.min_lr = check.non_negative_float("min_lr", min_lr)
        self.warmup_steps = check.non_negative_int("warmup_steps", warmup_steps)
        self._mode = _monitor.resolve_mode(self.monitor, self.mode)
        self._schedule = None  # the ScaledSchedule in use, if any
        self._unwrap_at_end = False
        self.multiplier = 1.0
        self._reset()

    def _reset(self):
        self.best = _monitor.initial_best(self._mode)
        self.wait = 0
        self.cooldown_counter = 0

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self):
        return {
            "monitor": self.monitor,
            "factor": self.factor,
            "patience": self.patience,
            "verbose": self.verbose,
            "mode": self.mode,
            "min_delta": self.min_delta,
            "cooldown": self.cooldown,
            "min_lr": self.min_lr,
            "warmup_steps": self.warmup_steps,
        }

    def get_state(self):
        """The state a resumed run needs, as JSON-friendly Python values."""
        return {
            "best": float(self.best),
            "wait": self.wait,
            "cooldown_counter": self.cooldown_counter,
            "multiplier": float(self.multiplier),
        }

    def set_state(self, state):
        """Restores `get_state()`'s values, the schedule's multiplier included."""
        self.best = float(state["best"])
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self.multiplier = float(state["multiplier"])
        if self._schedule is not None and not self._unwrap_at_end:
            self._set_schedule_multiplier(self.multiplier)

    def on_train_begin(self, logs=None):
        self._reset()
        optimizer = self.model.optimizer
        # The rate as given, a variable or a schedule; replaced below (see
        # `_compat.replace_learning_rate` for why not the public setter).
        rate = _compat.learning_rate_as_given(optimizer)
        self._unwrap_at_end = False
        if isinstance(rate, ScaledSchedule):
            self._schedule = rate
        elif isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
            self._schedule = ScaledSchedule(rate)
        elif isinstance(rate, keras.Variable):
            if not self.warmup_steps:
                self._schedule = None
                return
            # The warmup wraps the variable for this `fit` only: reductions
            # still assign the variable, which the optimizer saves.
            self._schedule = ScaledSchedule(rate)
            self._unwrap_at_end = True
        else:
            raise ValueError(
                "ReduceLROnPlateau needs the optimizer's learning rate to be a "
                "float, a variable or a `LearningRateSchedule`. "
                f"Received: learning_rate={rate!r}"
            )
        self._schedule.warmup_steps = self.warmup_steps
        if not self._unwrap_at_end:
            self.multiplier = float(
                keras.ops.convert_to_numpy(self._schedule.multiplier)
            )
        _compat.replace_learning_rate(optimizer, self._schedule)
        # The train step reads the rate when traced: trace it again.
        self.model.make_train_function(force=True)

    def on_train_end(self, logs=None):
        if self._unwrap_at_end:
            _compat.replace_learning_rate(self.model.optimizer, self._schedule.base)
            self.model.make_train_function(force=True)
            self._schedule = None
            self._unwrap_at_end = False

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            # As Keras' reducer: the rate in use this epoch, for History.
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )
        current = _monitor.read(logs, self.monitor, "ReduceLROnPlateau")
        current = self._mean_over_processes(current)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if _monitor.improved(current, self.best, self._mode, self.min_delta):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                if self._reduce(epoch):
                    self.cooldown_counter = self.cooldown
                self.wait = 0

    def _mean_over_processes(self, value):
        """The mean of `value` over the processes that train the model.

        Every process must take the same decision. TensorFlow's multi-worker
        `fit` logs metrics already reduced over its workers, but a training
        loop of another engine (a PyTorch DDP loop, JAX processes) may log
        each process's own. With several processes this is a collective
        operation: every process calls it at each epoch's end, with a value
        or without one (None: its logs lack the metric), so that none waits
        for another; the mean is over those with a value (None if none has).
        """
        cluster = current_cluster(self.model)
        if cluster.process_count == 1:
            return value
        present = value is not None
        values, counts = cluster.all_gather(
            [value if present else 0.0, float(present)]
        ).T  # (processes,) each
        if not counts.any():
            return None
        return float(values.sum() / counts.sum())

    def _reduce(self, epoch):
        """Applies one reduction; returns False when already at `min_lr`."""
        optimizer = self.model.optimizer
        if self._schedule is None or self._unwrap_at_end:
            variable = _compat.learning_rate_as_given(optimizer)
            if self._unwrap_at_end:
                variable = self._schedule.base
            old = float(keras.ops.convert_to_numpy(variable))
            if old <= self.min_lr:
                return False
            new = max(old * self.factor, self.min_lr)
            variable.assign(new)
            self.multiplier *= new / old
            self._say(epoch, f"reducing learning rate to {new:.4g}.")
            return True
        base = float(
            keras.ops.convert_to_numpy(self._schedule.base_rate(optimizer.iterations))
        )
        old = self.multiplier
        if base * old <= self.min_lr:
            return False
        new = old * self.factor
        if base * new < self.min_lr:
            new = self.min_lr / base
        self._set_schedule_multiplier(new)
        self._say(
            epoch,
            f"scaling the learning-rate schedule by {new:.4g} (now {base * new:.4g}).",
        )
        return True

    def _set_schedule_multiplier(self, value):
        self.multiplier = float(value)
        self._schedule.multiplier.assign(self.multiplier)
        if keras.config.backend() == "jax" and self.model is not None:
            # JAX traces the multiplier into the compiled step as a constant
            # (it is not an optimizer variable, so that saved optimizers keep
            # their layout): compile the step again.
            self.model.make_train_function(force=True)

    def _say(self, epoch, message):
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau {message}")


def _check_verbose(value):
    if value not in (0, 1) or isinstance(value, bool):
        raise ValueError(
            "Invalid value for argument `verbose`. Expected 0 or 1. "
            f"Received: verbose={value!r}"
        )
    return int(value)
