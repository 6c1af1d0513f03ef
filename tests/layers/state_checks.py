"""Properties every layer and model of the library must have at the start of
training and across a checkpoint: sublayers that start from weights of their
own, and a checkpoint that holds every variable."""

import keras
import numpy as np

from keras_blocks.callbacks import CheckpointManager

# Leading values compared between two weights: the shared-stream defect made
# them equal or proportional. Independent draws of 64 values correlate by
# about 0.125 (one standard deviation); 0.9 is never reached by chance.
PREFIX = 64
MIN_VALUES = 8
MAX_CORRELATION = 0.9
# Under this many shared values, chance alone passes MAX_CORRELATION too
# often (8 independent values: |r| > 0.9 with p ~ 0.002, which Hypothesis
# found among a BottleneckBlock's 10 pairs: 0.98 at seed 17581); there only
# equal or proportional weights, |r| ~ 1, are a finding.
MIN_FOR_CORRELATION = 16


def _random_weights(weights):
    """(path, flat float64 values) of the weights that are not constant."""
    found = []
    for weight in weights:
        values = np.asarray(keras.ops.convert_to_numpy(weight), "float64").ravel()
        if values.size >= MIN_VALUES and values.std() > 0:
            found.append((weight.path, values))
    return found


def _standardized(values):
    return (values - values.mean()) / values.std()


def correlated_pairs(weights):
    """Pairs of weights whose leading values are equal or proportional."""
    found = _random_weights(weights)
    pairs = []
    for i, (path_a, a) in enumerate(found):
        for path_b, b in found[i + 1 :]:
            n = min(a.size, b.size, PREFIX)
            if a[:n].std() == 0 or b[:n].std() == 0:
                continue
            correlation = np.mean(_standardized(a[:n]) * _standardized(b[:n]))
            limit = MAX_CORRELATION if n >= MIN_FOR_CORRELATION else 0.999
            if abs(correlation) > limit:
                pairs.append((path_a, path_b, round(float(correlation), 4)))
    return pairs


def scramble(variables, seed):
    """Random values in every variable, so that any value a restore misses
    differs from the saved one."""
    rng = np.random.default_rng(seed)
    for variable in variables:
        dtype = str(variable.dtype)
        if "float" in dtype:
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype(dtype))
        elif "int" in dtype:  # random-generator states, iteration counts
            variable.assign(rng.integers(1, 1000, variable.shape).astype(dtype))


def _values(model):
    variables = [*model.variables, *model.optimizer.variables]
    return [(v.path, keras.ops.convert_to_numpy(v).copy()) for v in variables]


def _run_hooks(model, manager, save):
    # A custom loop drives callbacks through a CallbackList, as `fit` does.
    callbacks = keras.callbacks.CallbackList([manager], model=model, epochs=1, steps=1)
    callbacks.on_train_begin()
    if save:
        scramble(model.optimizer.variables, seed=1)
        callbacks.on_epoch_begin(0)
        callbacks.on_epoch_end(0)
    callbacks.on_train_end()


def assert_checkpoint_holds_every_variable(build, directory, saved=None):
    """Saves a model built by `build()` (or `saved`, built already) with
    `CheckpointManager`, restores it into another one built by `build()`, and
    compares every variable: weights, BN statistics, random-generator states
    and the optimizer's slots."""
    saved = build() if saved is None else saved
    saved.compile(keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    scramble(saved.variables, seed=0)
    _run_hooks(saved, CheckpointManager(directory, verbose=0), save=True)
    expected = _values(saved)

    restored = build()
    restored.compile(keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    scramble(restored.variables, seed=2)
    _run_hooks(restored, CheckpointManager(directory, verbose=0), save=False)
    received = _values(restored)
    assert len(received) == len(expected)
    missed = [
        path
        for (path, want), (_, got) in zip(expected, received, strict=True)
        if not np.array_equal(want, got)
    ]
    assert not missed, f"not restored: {missed}"
