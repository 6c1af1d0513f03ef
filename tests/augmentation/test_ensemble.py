"""Ensemble: the average of its members' softmax outputs, as a Keras model."""

import keras
import numpy as np
import pytest

from keras_blocks.evaluation import Ensemble, evaluate_with_tta, predict_with_tta


def member(seed, size=7, classes=3, name="classifier"):
    """Small classifiers; all share one name, as two runs of one model do."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(
        inputs, keras.layers.Dense(classes, activation="softmax")(x), name=name
    )


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(size=(5, 7, 7, 3)).astype("float32")


@pytest.mark.slow
def test_predictions_are_the_mean_of_the_members(images):
    members = [member(seed) for seed in range(3)]
    ensemble = Ensemble(members)
    each = [m.predict_on_batch(images) for m in members]
    assert not np.allclose(each[0], each[1])  # distinct members
    np.testing.assert_allclose(
        ensemble.predict(images, verbose=0), np.mean(each, 0), atol=1e-6
    )


def test_weights_weigh_the_members(images):
    members = [member(0), member(1)]
    ensemble = Ensemble(members, weights=(3.0, 1.0))
    a, b = (m.predict_on_batch(images) for m in members)
    np.testing.assert_allclose(
        ensemble.predict(images, verbose=0), 0.75 * a + 0.25 * b, atol=1e-6
    )


@pytest.mark.slow
def test_evaluates_compiled_and_with_test_time_augmentation(images):
    ensemble = Ensemble([member(0), member(1)])
    labels = np.array([0, 1, 2, 0, 1])
    ensemble.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    _, accuracy = ensemble.evaluate(images, labels, verbose=0)
    expected = np.mean(np.argmax(ensemble.predict(images, verbose=0), -1) == labels)
    assert accuracy == pytest.approx(expected)
    larger = np.random.default_rng(1).uniform(size=(5, 9, 9, 3)).astype("float32")
    result = evaluate_with_tta(ensemble, larger, labels)
    members_tta = np.mean(
        [predict_with_tta(m, larger) for m in ensemble.members], axis=0
    )  # the average of averages is the average
    np.testing.assert_allclose(result.predictions, members_tta, atol=1e-6)


def test_keras_file_round_trip(tmp_path, images):
    ensemble = Ensemble([member(0), member(1)], weights=(1.0, 2.0), name="pair")
    path = tmp_path / "ensemble.keras"
    ensemble.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, Ensemble) and loaded.name == "pair"
    assert loaded.member_weights == (1.0, 2.0)
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0),
        ensemble.predict(images, verbose=0),
        atol=1e-6,
    )


def test_a_member_with_auxiliary_heads_gives_its_first_output(images):
    inputs = keras.Input((7, 7, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    main = keras.layers.Dense(3, activation="softmax", name="main")(x)
    aux = keras.layers.Dense(3, activation="softmax", name="aux")(x)
    with_aux = keras.Model(inputs, [main, aux])
    ensemble = Ensemble([with_aux, member(0)])
    expected = (
        with_aux.predict_on_batch(images)[0] + member(0).predict_on_batch(images)
    ) / 2
    np.testing.assert_allclose(ensemble.predict(images, verbose=0), expected, atol=1e-6)


@pytest.mark.parametrize(
    "members, weights, message",
    [
        ([], None, "Expected a non-empty list of Keras models"),
        ("model", None, "Expected a non-empty list of Keras models"),
        ([1], None, "Expected Keras models. Received: an element of type int"),
        (
            lambda: [member(0), member(0, size=8)],
            None,
            "Expected models with the same input and output shapes",
        ),
        (
            lambda: [member(0), member(0, classes=4)],
            None,
            "Expected models with the same input and output shapes",
        ),
        (lambda: [member(0)], (1.0, 2.0), "Expected one weight per member"),
        (lambda: [member(0)], (-1.0,), "Invalid value for argument `weights`"),
        (lambda: [member(0), member(1)], (0.0, 0.0), "at least one strictly positive"),
    ],
)
@pytest.mark.backend_independent(
    reason="Ensemble checks its members and weights in Python, before any op"
)
def test_bad_arguments(members, weights, message):
    members = members() if callable(members) else members
    with pytest.raises(ValueError, match=message):
        Ensemble(members, weights=weights)


@pytest.mark.slow
def test_ensembles_nest(images):
    inner = Ensemble([member(0), member(1)])
    outer = Ensemble([inner, member(2)])
    assert outer.input_shape == (None, 7, 7, 3) and outer.output_shape == (None, 3)
    expected = (
        inner.predict(images, verbose=0) + member(2).predict_on_batch(images)
    ) / 2
    np.testing.assert_allclose(outer.predict(images, verbose=0), expected, atol=1e-6)
