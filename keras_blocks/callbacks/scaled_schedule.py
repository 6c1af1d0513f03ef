"""The learning-rate schedule that `ReduceLROnPlateau` installs on an optimizer."""

import keras
from keras.optimizers.schedules import LearningRateSchedule

from keras_blocks import _validation as check


@keras.saving.register_keras_serializable(package="keras_blocks")
class ScaledSchedule(LearningRateSchedule):
    """A learning rate times a multiplier, after an optional linear warmup.

    `ReduceLROnPlateau` wraps an optimizer's learning rate in this schedule, so
    that a plateau scales a `LearningRateSchedule` (cosine decay keeps its
    shape, only lower) and a warmup ramps any learning rate up from zero:

    `lr(step) = multiplier * min(1, (step + 1) / warmup_steps) * base(step)`

    Args:
        base: float, `keras.Variable` or `LearningRateSchedule`. The learning
            rate being scaled; a variable is read at every step.
        multiplier: float. The initial multiplier, kept in a non-trainable
            float32 variable (`self.multiplier`).
        warmup_steps: int. Optimizer steps over which the rate grows linearly
            from `1 / warmup_steps` of its value to all of it; 0 for none.

    Examples:
    >>> cosine = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=100)
    >>> schedule = ScaledSchedule(cosine, multiplier=0.5, warmup_steps=10)
    >>> round(float(schedule(9)), 6) == round(0.5 * float(cosine(9)), 6)
    True
    >>> round(float(schedule(0)), 6) == round(0.05 * float(cosine(0)), 6)
    True
    """

    def __init__(
        self,
        base: float | keras.Variable | LearningRateSchedule,
        multiplier: float = 1.0,
        warmup_steps: int = 0,
    ) -> None:
        if not isinstance(
            base,
            (
                float,
                int,
                keras.Variable,
                LearningRateSchedule,
            ),
        ) or isinstance(base, bool):
            raise ValueError(
                "Invalid value for argument `base`. Expected a float, a "
                f"`keras.Variable` or a `LearningRateSchedule`. Received: base={base!r}"
            )
        self.base = float(base) if isinstance(base, (float, int)) else base
        self.multiplier = keras.Variable(
            check.positive_float("multiplier", multiplier),
            dtype="float32",
            trainable=False,
            name="lr_multiplier",
        )
        self.warmup_steps = check.non_negative_int("warmup_steps", warmup_steps)

    def base_rate(self, step):
        """The wrapped learning rate at `step`, before warmup and multiplier."""
        if isinstance(self.base, LearningRateSchedule):
            return keras.ops.cast(self.base(step), "float32")
        return keras.ops.cast(self.base, "float32")

    def __call__(self, step):
        rate = self.base_rate(step) * self.multiplier
        if self.warmup_steps:
            step = keras.ops.cast(step, "float32")
            rate = rate * keras.ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        return rate

    def get_config(self):
        base = self.base
        if isinstance(base, keras.Variable):
            base = float(keras.ops.convert_to_numpy(base))
        elif not isinstance(base, float):
            base = keras.optimizers.schedules.serialize(base)
        return {
            "base": base,
            "multiplier": float(keras.ops.convert_to_numpy(self.multiplier)),
            "warmup_steps": self.warmup_steps,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["base"], dict):
            config["base"] = keras.optimizers.schedules.deserialize(config["base"])
        return cls(**config)
