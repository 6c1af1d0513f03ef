"""The library's names that Keras (or TensorFlow) also has are drop-in
supersets of them: every argument of Keras' class, with its default, and a
Keras config or call that works with Keras' works with ours. A name that
could not be a superset would need another name that says what it adds."""

import inspect

import keras
import numpy as np
import pytest

from keras_blocks import callbacks, layers

# (ours, Keras'): the same name in both.
SHADOWING = [
    (layers.Dropout, keras.layers.Dropout),
    (layers.Normalization, keras.layers.Normalization),
    (callbacks.ReduceLROnPlateau, keras.callbacks.ReduceLROnPlateau),
]


def _parameters(cls):
    return {
        name: parameter.default
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if name != "self"
        and parameter.kind
        not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    }


@pytest.mark.backend_independent(reason="signatures, compared in Python")
@pytest.mark.parametrize("ours, theirs", SHADOWING, ids=lambda c: c.__module__)
def test_every_keras_argument_is_ours_with_its_default(ours, theirs):
    mine, keras_own = _parameters(ours), _parameters(theirs)
    missing = sorted(set(keras_own) - set(mine))
    assert not missing, f"{ours.__name__} lacks Keras' {missing}"
    for name, default in keras_own.items():
        assert mine[name] == default, (ours.__name__, name)


@pytest.mark.backend_independent(reason="a TensorFlow class: its signature")
def test_the_multi_worker_strategy_is_tensorflows_subclass():
    tf = pytest.importorskip("tensorflow")
    from keras_blocks.distribute import MultiWorkerMirroredStrategy

    assert issubclass(
        MultiWorkerMirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy
    )
    assert _parameters(MultiWorkerMirroredStrategy) == _parameters(
        tf.distribute.MultiWorkerMirroredStrategy
    )


@pytest.mark.backends(
    "tensorflow", "jax", "torch", reason="the layers run on each backend"
)
@pytest.mark.parametrize(
    "ours, theirs, config",
    [
        (layers.Dropout, keras.layers.Dropout, dict(rate=0.5, seed=3)),
        (
            layers.Normalization,
            keras.layers.Normalization,
            dict(axis=-1, mean=[1.0, 2.0], variance=[4.0, 9.0]),
        ),
    ],
)
def test_a_keras_layers_config_makes_our_layer_compute_the_same(ours, theirs, config):
    keras_layer = theirs(**config)
    layer = ours.from_config(keras_layer.get_config())
    x = np.random.default_rng(0).normal(size=(4, 2)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)),
        keras.ops.convert_to_numpy(keras_layer(x)),
        rtol=1e-6,
    )
