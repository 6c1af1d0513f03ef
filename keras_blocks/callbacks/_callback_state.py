"""The state of the other callbacks of a `fit`, which `CheckpointManager` keeps.

A callback with `get_state`/`set_state` (this library's `ReduceLROnPlateau`)
gives its own; Keras' stateful callbacks are read and written by attribute,
from the table below. The callbacks are keyed by class and rank
(`"EarlyStopping"`, `"EarlyStopping:1"`), so a resumed run must list them in
the same order.
"""

import inspect

import keras

# The state of Keras' own stateful callbacks, saved and restored by name:
# (class, scalar attributes, attributes holding a list of arrays or None).
_KERAS_CALLBACK_STATE = (
    (
        keras.callbacks.EarlyStopping,
        ("wait", "stopped_epoch", "best", "best_epoch"),
        ("best_weights",),
    ),
    (keras.callbacks.ReduceLROnPlateau, ("wait", "cooldown_counter", "best"), ()),
)


def sibling_callbacks(callback):
    """The other callbacks of the `fit` that is calling `callback`.

    Keras gives a callback its model, not its siblings: they are found on the
    `CallbackList` further up the call stack. None if there is none.
    """
    frame = inspect.currentframe()
    try:
        while frame is not None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, keras.callbacks.CallbackList) and any(
                c is callback for c in owner.callbacks
            ):
                return [c for c in owner.callbacks if c is not callback]
            frame = frame.f_back
    finally:
        del frame
    return None


def _keyed(callbacks):
    """(key, callback) for each callback with a state, keyed by class and rank."""
    seen = {}
    for callback in callbacks:
        if not _has_state(callback):
            continue
        name = type(callback).__name__
        seen[name] = seen.get(name, -1) + 1
        yield (name if seen[name] == 0 else f"{name}:{seen[name]}"), callback


def _has_get_state(callback):
    return callable(getattr(callback, "get_state", None)) and callable(
        getattr(callback, "set_state", None)
    )


def _keras_state(callback):
    """(scalar names, array-list names) of one of Keras' callbacks, or None."""
    for kind, names, lists in _KERAS_CALLBACK_STATE:
        if isinstance(callback, kind):
            return names, lists
    return None


def _has_state(callback):
    return _has_get_state(callback) or _keras_state(callback) is not None


def _plain(value):
    """NumPy and backend scalars as Python numbers, for JSON."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return float(keras.ops.convert_to_numpy(value))


def callback_states(callbacks):
    """({key: JSON state}, {name: array}) of the callbacks with a state.

    A list of arrays (`EarlyStopping.best_weights`) is saved as its length in
    the JSON state and its arrays as `key/name/i`.
    """
    states, arrays = {}, {}
    for key, callback in _keyed(callbacks):
        if _has_get_state(callback):
            states[key] = callback.get_state()
            continue
        names, lists = _keras_state(callback)
        state = {name: _plain(getattr(callback, name, None)) for name in names}
        for name in lists:
            values = getattr(callback, name, None)
            state[name] = None if values is None else len(values)
            for i, value in enumerate(values or ()):
                arrays[f"{key}/{name}/{i}"] = keras.ops.convert_to_numpy(value)
        states[key] = state
    return states, arrays


def set_callback_states(callbacks, states, arrays):
    for key, callback in _keyed(callbacks):
        if key not in states:
            continue
        if _has_get_state(callback):
            callback.set_state(states[key])
            continue
        _, lists = _keras_state(callback)
        for name, value in states[key].items():
            if name in lists and value is not None:
                value = [arrays[f"{key}/{name}/{i}"] for i in range(value)]
            setattr(callback, name, value)
