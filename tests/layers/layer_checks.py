"""`check_layer`: the checks every layer of the library must pass.

A layer test calls `check_layer(cls, kwargs, input_shape, tmp_path)` for each
configuration it cares about; the numeric checks stay in the layer's own test.
"""

import json

import keras
import numpy as np
import pytest

MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")

# The layer tests whose result no backend enters (tests/conftest.py): Python
# that runs before any backend op.
ARGUMENT_CHECKS = pytest.mark.backend_independent(
    reason="argument checks in __init__, before any backend op"
)
INPUT_SHAPE_CHECKS = pytest.mark.backend_independent(
    reason="input-shape checks in build, in Python"
)
WEIGHT_SHAPES = pytest.mark.backend_independent(
    reason="weight shapes and names from build; nothing computed"
)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def random_inputs(shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(
        "float32"
    )


def assert_close_to_scale(actual, expected, relative=1e-5):
    """At most `relative` of the expected values' scale (their largest
    magnitude) apart. Returns the largest difference over that scale.

    The measure for two correct orders of the same sums (a BN folded into a
    convolution against the two applied in turn): their rounding errors
    scale with the terms summed, not with each result, so an element near
    zero may differ by more than `relative` of itself.
    """
    actual = np.asarray(to_numpy(actual), "float64")
    expected = np.asarray(expected, "float64")
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(), np.finfo("float32").tiny)
    difference = np.abs(actual - expected).max() / scale
    assert difference <= relative, f"{difference:.2e} of the scale apart"
    return difference


def check_layer(
    cls,
    kwargs,
    input_shape,
    tmp_path,
    expected_output_shape=None,
    mixed_precision=True,
):
    """Symbolic and eager calls, a training step, config and `.keras` round
    trips and mixed precision, for `cls(**kwargs)` on inputs of `input_shape`.
    Returns the layer."""
    x = random_inputs(input_shape)
    layer = cls(**kwargs)
    expected = tuple(layer.compute_output_shape(input_shape))
    if expected_output_shape is not None:
        assert expected == tuple(expected_output_shape)

    # Symbolic call: the functional API sees the shape compute_output_shape gives.
    inputs = keras.Input(input_shape[1:], batch_size=input_shape[0])
    outputs = layer(inputs)
    assert tuple(outputs.shape) == expected
    model = keras.Model(inputs, outputs)

    # Eager calls, in inference and training mode.
    for training in (False, True):
        y = to_numpy(layer(x, training=training))
        assert y.shape == expected
        assert np.isfinite(y).all()

    _check_training_step(layer, model, x)
    _check_config_round_trip(cls, layer)
    _check_saved_model(cls, model, x, tmp_path)
    if mixed_precision:
        for policy in MIXED_POLICIES:
            check_mixed_precision(cls, kwargs, x, policy)
    return layer


def _check_training_step(layer, model, x):
    head = keras.layers.Dense(1)
    trainer = keras.Model(model.input, head(keras.layers.Flatten()(model.output)))
    trainer.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    before = [to_numpy(w).copy() for w in layer.trainable_weights]
    loss = trainer.train_on_batch(x, np.ones((x.shape[0], 1), "float32"))
    assert np.isfinite(loss)
    after = [to_numpy(w) for w in layer.trainable_weights]
    if before:
        assert any(
            not np.array_equal(b, a) for b, a in zip(before, after, strict=True)
        ), "a training step changed none of the layer's trainable weights"


def _check_config_round_trip(cls, layer):
    config = layer.get_config()
    json.dumps(config)  # A .keras file stores the config as JSON.
    clone = cls.from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"keras_blocks>{cls.__name__}"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is cls
    assert restored.get_config() == config


def _check_saved_model(cls, model, x, tmp_path):
    path = tmp_path / f"{cls.__name__}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.layers[-1]) is cls
    assert len(loaded.weights) == len(model.weights)
    for original, restored in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(original), to_numpy(restored))
    np.testing.assert_allclose(
        to_numpy(loaded(x, training=False)),
        to_numpy(model(x, training=False)),
        rtol=1e-6,
        atol=1e-6,
    )


def check_mixed_precision(cls, kwargs, x, policy):
    """Outputs in the policy's compute dtype, finite; weights stay float32."""
    layer = cls(**kwargs, dtype=policy)
    compute_dtype = keras.DTypePolicy(policy).compute_dtype
    for training in (False, True):
        y = layer(keras.ops.cast(x, compute_dtype), training=training)
        assert keras.backend.standardize_dtype(y.dtype) == compute_dtype
        assert np.isfinite(to_numpy(keras.ops.cast(y, "float32"))).all()
    for weight in layer.trainable_weights:
        assert weight.dtype == "float32"


def assert_matches_reference(layer, reference, x, atol, rtol):
    """`layer` computes what the plain-Keras `reference` (holding the same
    weights) computes on `x`: at inference, then in training (which moves
    both models' BN statistics alike)."""
    for training in (False, True):
        np.testing.assert_allclose(
            to_numpy(layer(x, training=training)),
            run_reference(reference, x, training=training),
            atol=atol,
            rtol=rtol,
            err_msg=f"training={training}",
        )


def run_reference(model, x, training=False):
    """Runs a plain-Keras reference model and returns NumPy.

    Keras' own `Conv2D` cannot run `channels_first` on TensorFlow's CPU
    kernels (our layers can); XLA can, so there the reference is compiled.
    """
    channels_first = any(
        getattr(layer, "data_format", None) == "channels_first"
        for layer in model.layers
    )
    if channels_first and keras.config.backend() == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(
            lambda inputs: model(inputs, training=training), jit_compile=True
        )
        return to_numpy(compiled(tf.constant(x)))
    return to_numpy(model(x, training=training))
