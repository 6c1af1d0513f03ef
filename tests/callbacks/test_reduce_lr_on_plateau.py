import math
import re

import keras
import numpy as np
import pytest

from keras_blocks.callbacks import ReduceLROnPlateau, ScaledSchedule
from tests.callbacks.markers import CHECKS

# Full-batch linear regression: one SGD step per epoch, simulated in NumPy.
X = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
Y = (X @ np.array([[1.0], [-2.0], [0.5]], "float32") + 0.3).astype("float32")


def linear_model(learning_rate):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate), loss="mse")
    return model


def installed_schedule(optimizer):
    """The `ScaledSchedule` an optimizer holds, read from its public config."""
    config = optimizer.get_config()["learning_rate"]
    assert config["registered_name"] == "keras_blocks>ScaledSchedule"
    return keras.optimizers.schedules.deserialize(config)


def simulate(model, rates):
    """NumPy SGD from the model's current weights, one full-batch step per rate."""
    w, b = (v.astype("float64") for v in model.get_weights())
    for rate in rates:
        error = X @ w + b - Y  # (16, 1)
        w = w - rate * 2 * X.T @ error / len(X)
        b = b - rate * 2 * error.mean(0)
    return w, b


def fit(model, callbacks, epochs):
    rates = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: rates.append(
            float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        )
    )
    model.fit(
        X,
        Y,
        batch_size=len(X),
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[*callbacks, recorder],
    )
    return rates


def never_improves(**kwargs):
    return ReduceLROnPlateau("loss", min_delta=1e6, **kwargs)


def test_cosine_decay_is_scaled_in_the_update():
    """The train step itself uses multiplier * cosine(step): checked on the weights."""
    cosine = keras.optimizers.schedules.CosineDecay(0.05, decay_steps=20)
    model = linear_model(cosine)
    start = linear_model(0.0)
    start.set_weights(model.get_weights())
    reducer = never_improves(factor=0.5, patience=2)
    fit(model, [reducer], epochs=6)
    # The first epoch sets `best`; two more without improvement reduce, so
    # the reductions follow epochs 2 and 4 (0-based): multipliers per step.
    multipliers = [1, 1, 1, 0.5, 0.5, 0.25]
    rates = [m * float(cosine(step)) for step, m in enumerate(multipliers)]
    w, b = simulate(start, rates)
    np.testing.assert_allclose(model.get_weights()[0], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.get_weights()[1], b, rtol=1e-5, atol=1e-6)
    assert reducer.get_state()["multiplier"] == 0.25
    # The schedule keeps its shape: the rate is the cosine times the multiplier.
    current = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    assert math.isclose(current, 0.25 * float(cosine(6)), rel_tol=1e-6)


@pytest.mark.slow
def test_float_rate_is_reduced_like_keras():
    ours, theirs = linear_model(0.1), linear_model(0.1)
    theirs.set_weights(ours.get_weights())
    kwargs = dict(factor=0.5, patience=1, cooldown=1, min_lr=0.02)
    rates = fit(ours, [never_improves(**kwargs)], epochs=6)
    keras_rates = fit(
        theirs, [keras.callbacks.ReduceLROnPlateau("loss", min_delta=1e6, **kwargs)], 6
    )
    np.testing.assert_allclose(rates, keras_rates)
    # Keras' cooldown: the epoch after a reduction only counts down.
    np.testing.assert_allclose(rates, [0.1, 0.05, 0.025, 0.02, 0.02, 0.02])
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_min_lr_bounds_a_scaled_schedule():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 1.0)  # constant
    model = linear_model(schedule)
    rates = fit(model, [never_improves(factor=0.1, patience=1, min_lr=0.004)], 4)
    np.testing.assert_allclose(rates, [0.1, 0.01, 0.004, 0.004], rtol=1e-6)


def test_linear_warmup_on_a_float_rate():
    model = linear_model(0.08)
    start = linear_model(0.0)
    start.set_weights(model.get_weights())
    reducer = ReduceLROnPlateau("loss", patience=100, warmup_steps=4)
    fit(model, [reducer], epochs=6)
    rates = [0.08 * min(1.0, (step + 1) / 4) for step in range(6)]
    w, _ = simulate(start, rates)
    np.testing.assert_allclose(model.get_weights()[0], w, rtol=1e-5, atol=1e-6)
    # The warmup belongs to that `fit`: the optimizer gets its variable back
    # (under a schedule, `learning_rate` is the schedule's current value).
    assert isinstance(model.optimizer.learning_rate, keras.Variable)
    assert len(model.optimizer.variables) == 2  # iterations, learning rate


def test_warmup_over_a_schedule_and_reduction():
    cosine = keras.optimizers.schedules.CosineDecay(0.05, decay_steps=10)
    model = linear_model(cosine)
    start = linear_model(0.0)
    start.set_weights(model.get_weights())
    fit(model, [never_improves(factor=0.5, patience=3, warmup_steps=2)], epochs=5)
    rates = [
        m * min(1.0, (step + 1) / 2) * float(cosine(step))
        for step, m in enumerate([1, 1, 1, 1, 0.5])
    ]
    w, _ = simulate(start, rates)
    np.testing.assert_allclose(model.get_weights()[0], w, rtol=1e-5, atol=1e-6)


def test_state_round_trip_and_reset():
    model = linear_model(keras.optimizers.schedules.CosineDecay(0.05, 50))
    reducer = never_improves(factor=0.5, patience=1, cooldown=2)
    fit(model, [reducer], epochs=2)
    state = reducer.get_state()
    assert state == {
        "best": state["best"],
        "wait": 0,
        "cooldown_counter": 2,
        "multiplier": 0.5,
    }
    other = ReduceLROnPlateau("loss")
    other.set_model(model)
    other.on_train_begin()
    other.set_state({**state, "multiplier": 0.125})
    assert other.get_state()["multiplier"] == 0.125
    schedule = installed_schedule(model.optimizer)
    assert float(keras.ops.convert_to_numpy(schedule.multiplier)) == 0.125


def test_saved_model_keeps_the_reduction(tmp_path):
    cosine = keras.optimizers.schedules.CosineDecay(0.05, decay_steps=50)
    model = linear_model(cosine)
    fit(model, [never_improves(factor=0.5, patience=1)], epochs=3)
    path = tmp_path / "model.keras"
    model.save(path)
    with np.testing.suppress_warnings() as sup:
        log = sup.record(UserWarning)
        loaded = keras.models.load_model(path, safe_mode=True)
    assert not [w for w in log if "optimizer" in str(w.message)]
    assert isinstance(installed_schedule(loaded.optimizer), ScaledSchedule)
    assert math.isclose(
        float(keras.ops.convert_to_numpy(loaded.optimizer.learning_rate)),
        float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
        rel_tol=1e-6,
    )
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@CHECKS
def test_config_round_trip():
    reducer = ReduceLROnPlateau("val_accuracy", factor=0.2, patience=3, warmup_steps=7)
    config = reducer.get_config()
    assert ReduceLROnPlateau.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(reducer)
    )
    assert restored.get_config() == config


@CHECKS
def test_schedule_config_round_trip():
    schedule = ScaledSchedule(
        keras.optimizers.schedules.CosineDecay(0.1, 10), multiplier=0.5, warmup_steps=3
    )
    copy = ScaledSchedule.from_config(schedule.get_config())
    for step in (0, 2, 5):
        assert float(copy(step)) == float(schedule(step))


def test_missing_metric_warns_with_the_logged_ones():
    model = linear_model(0.1)
    with pytest.warns(
        UserWarning, match=r"`val_auc`.*Available metrics are: learning_rate, loss\."
    ):
        fit(model, [ReduceLROnPlateau("val_auc")], epochs=1)


@pytest.mark.parametrize(
    "monitor, mode, direction",
    [
        ("val_accuracy", "auto", "max"),
        ("val_loss", "auto", "min"),
        ("loss", "max", "max"),
    ],
)
@CHECKS
def test_mode(monitor, mode, direction):
    reducer = ReduceLROnPlateau(monitor, mode=mode)
    assert reducer.best == (-math.inf if direction == "max" else math.inf)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(factor=0),
            "Invalid value for argument `factor`. Expected a number in the range (0, 1). Received: factor=0",
        ),
        (
            dict(factor=-0.5),
            "Invalid value for argument `factor`. Expected a number in the range (0, 1). Received: factor=-0.5",
        ),
        (
            dict(factor=1.0),
            "Invalid value for argument `factor`. Expected a number in the range (0, 1). Received: factor=1.0",
        ),
        (
            dict(patience=0),
            "Invalid value for argument `patience`. Expected a strictly positive integer. Received: patience=0",
        ),
        (
            dict(patience=-1),
            "Invalid value for argument `patience`. Expected a strictly positive integer. Received: patience=-1",
        ),
        (
            dict(cooldown=-1),
            "Invalid value for argument `cooldown`. Expected a non-negative integer. Received: cooldown=-1",
        ),
        (
            dict(min_lr=-1e-3),
            "Invalid value for argument `min_lr`. Expected a non-negative finite number. Received: min_lr=-0.001",
        ),
        (
            dict(min_delta=-1),
            "Invalid value for argument `min_delta`. Expected a non-negative finite number. Received: min_delta=-1",
        ),
        (
            dict(mode="up"),
            "Invalid value for argument `mode`. Expected one of ('auto', 'min', 'max'). Received: mode='up'",
        ),
        (
            dict(verbose=2),
            "Invalid value for argument `verbose`. Expected 0 or 1. Received: verbose=2",
        ),
        (
            dict(warmup_steps=1.5),
            "Invalid value for argument `warmup_steps`. Expected a non-negative integer. Received: warmup_steps=1.5",
        ),
        (
            dict(monitor=""),
            "Invalid value for argument `monitor`. Expected the name of a logged metric, such as 'val_loss'. Received: monitor=''",
        ),
    ],
)
@CHECKS
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ReduceLROnPlateau(**kwargs)


@CHECKS
def test_no_stray_keyword_arguments():
    with pytest.raises(TypeError):
        ReduceLROnPlateau(patiense=3)


@CHECKS
def test_bad_schedule_args():
    with pytest.raises(ValueError, match=re.escape("Received: base='fast'")):
        ScaledSchedule("fast")
    with pytest.raises(ValueError, match=re.escape("Received: multiplier=0")):
        ScaledSchedule(0.1, multiplier=0)


def test_callable_learning_rate_is_refused():
    model = linear_model(lambda: 0.1)  # what Keras allows, unusual
    with pytest.raises(
        ValueError, match="float, a variable or a `LearningRateSchedule`"
    ):
        fit(model, [ReduceLROnPlateau("loss")], epochs=1)


def test_learning_rate_goes_to_history_as_with_keras():
    """The rate each epoch ended with, before that epoch's reduction."""
    cosine = keras.optimizers.schedules.CosineDecay(0.05, 50)
    model = linear_model(cosine)
    fit(model, [never_improves(factor=0.5, patience=1)], epochs=3)
    expected = [m * float(cosine(step)) for step, m in ((1, 1), (2, 1), (3, 0.5))]
    np.testing.assert_allclose(model.history.history["learning_rate"], expected, 1e-6)


@CHECKS
def test_schedule_saved_under_its_old_module_loads():
    """Files written before `ScaledSchedule` moved from `_scaled_schedule` to
    `scaled_schedule` name the old module: the registered name loads them."""
    config = keras.saving.serialize_keras_object(ScaledSchedule(0.1, 0.5, 3))
    assert config["registered_name"] == "keras_blocks>ScaledSchedule"
    assert config["module"] == "keras_blocks.callbacks.scaled_schedule"
    config["module"] = "keras_blocks.callbacks._scaled_schedule"
    loaded = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert isinstance(loaded, ScaledSchedule)
    assert loaded.get_config() == {"base": 0.1, "multiplier": 0.5, "warmup_steps": 3}
