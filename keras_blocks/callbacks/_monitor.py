"""Watching a logged metric: shared by `ReduceLROnPlateau` and `CheckpointManager`."""

import math
import warnings

from keras_blocks import _validation as check

MODES = ("auto", "min", "max")
# Metrics that improve as they grow, when `mode="auto"`.
_HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1", "iou")


def check_monitor(value):
    if not isinstance(value, str) or not value:
        raise ValueError(
            "Invalid value for argument `monitor`. Expected the name of a logged "
            f"metric, such as 'val_loss'. Received: monitor={value!r}"
        )
    return value


def resolve_mode(monitor, mode):
    """'min' or 'max'; 'auto' is 'max' for accuracy-like names, else 'min'."""
    check.one_of("mode", mode, MODES)
    if mode != "auto":
        return mode
    name = monitor.lower()
    return "max" if any(word in name for word in _HIGHER_IS_BETTER) else "min"


def initial_best(mode):
    return -math.inf if mode == "max" else math.inf


def improved(current, best, mode, min_delta=0.0):
    if mode == "max":
        return current > best + min_delta
    return current < best - min_delta


def read(logs, monitor, owner):
    """The monitored value as a float, or None and a warning naming the logged ones."""
    value = (logs or {}).get(monitor)
    if value is None:
        available = ", ".join(sorted(logs or {})) or "none"
        warnings.warn(
            f"{owner} is conditioned on metric `{monitor}`, which is not "
            f"available. Available metrics are: {available}.",
            stacklevel=3,
        )
        return None
    return float(value)
