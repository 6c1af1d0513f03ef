"""Grouped convolutions on TensorFlow: our `Conv2D` takes no XLA detour.

Keras runs a grouped `Conv2D` on TensorFlow inside a nested XLA-compiled
function, which tf2onnx leaves as a call that ONNX Runtime refuses. Ours runs
one grouped convolution where TensorFlow can (a GPU, oneDNN's float32 CPU
kernels) and one convolution per group elsewhere. Both routes are compared
here with Keras' own grouped `Conv2D`, forward and gradients, whichever the
machine would pick; a process with oneDNN turned off shows the per-group
route is taken where a single grouped convolution cannot train.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    keras.config.backend() != "tensorflow",
    reason="elsewhere our Conv2D is Keras' (checked in test_conv_bn_act.py)",
)


def _pair(groups, data_format, strides, dilation_rate):
    """Keras' grouped Conv2D and ours, with the same random weights."""
    from keras_blocks.layers import _conv

    options = dict(
        filters=8,
        kernel_size=3,
        strides=strides,
        dilation_rate=dilation_rate,
        padding="same",
        groups=groups,
        data_format=data_format,
    )
    theirs, ours = keras.layers.Conv2D(**options), _conv.Conv2D(**options)
    shape = (2, 9, 9, 8) if data_format == "channels_last" else (2, 8, 9, 9)
    theirs.build(shape)
    ours.build(shape)
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=w.shape).astype("float32") for w in theirs.weights]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    return theirs, ours, rng.normal(size=shape).astype("float32")


def _outputs_and_gradients(layer, x):
    import tensorflow as tf

    x = tf.constant(x)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.sin(y))
        return [y, *tape.gradient(loss, [x, *layer.trainable_variables])]

    return [t.numpy() for t in step()]


@pytest.mark.parametrize("route", ("grouped", "per_group"))
@pytest.mark.parametrize(
    "groups, data_format, strides, dilation_rate",
    [
        (2, "channels_last", 1, 1),
        (4, "channels_last", 2, 1),
        (8, "channels_last", 1, 2),  # depthwise-like: one channel a group
        (2, "channels_first", 2, 1),
    ],
)
def test_equal_to_keras_grouped_conv2d(
    route, groups, data_format, strides, dilation_rate, monkeypatch
):
    from keras_blocks.layers import _conv

    monkeypatch.setattr(
        _conv, "_tensorflow_runs_grouped", lambda dtype, on_cpu: route == "grouped"
    )
    theirs, ours, x = _pair(groups, data_format, strides, dilation_rate)
    # output, input gradient, kernel gradient, bias gradient
    for mine, keras_own in zip(
        _outputs_and_gradients(ours, x), _outputs_and_gradients(theirs, x), strict=True
    ):
        scale = np.abs(keras_own).max()
        np.testing.assert_allclose(mine, keras_own, atol=1e-5 * scale, rtol=0)


def test_the_route_this_machine_takes():
    # Whatever the predicate decides here, the layer trains (fit) and predicts.
    from keras_blocks.layers import ConvBNAct

    model = keras.Sequential([keras.Input((8, 8, 4)), ConvBNAct(8, 3, groups=2)])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 4)).astype("float32")
    history = model.fit(x, np.zeros((4, 8, 8, 8), "float32"), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(x, verbose=0).shape == (4, 8, 8, 8)


WITHOUT_ONEDNN = """
import numpy as np, keras, tensorflow as tf
from tensorflow.python.util import _pywrap_util_port
from keras_blocks.layers import ConvBNAct
assert not _pywrap_util_port.IsMklEnabled()
x = np.random.default_rng(0).normal(size=(4, 8, 8, 4)).astype("float32")
y = np.zeros((4, 8, 8, 8), "float32")
for policy in ("float32", "mixed_float16"):
    keras.config.set_dtype_policy(policy)
    model = keras.Sequential([keras.Input((8, 8, 4)), ConvBNAct(8, 3, groups=2)])
    model.compile("sgd", "mse")
    loss = model.fit(x, y, epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss), policy
# Keras' own grouped Conv2D + bias + ReLU: the nested XLA function it needs
# (a plain grouped convolution would fail here: Eigen computes no grouped
# gradients).
keras.config.set_dtype_policy("float32")
conv = tf.constant(np.ones((3, 3, 2, 8), "float32"))
try:
    with tf.GradientTape() as tape:
        xs = tf.constant(x)
        tape.watch(xs)
        out = tf.function(lambda a: tf.nn.convolution(a, conv, padding="SAME"))(xs)
    tape.gradient(out, xs)
    print("PLAIN GROUPED TRAINS")
except tf.errors.OpError:
    print("PLAIN GROUPED FAILS")
print("TRAINED")
"""


def test_trains_where_tensorflow_has_no_grouped_cpu_kernels():
    # TF_ENABLE_ONEDNN_OPTS=0: Eigen's CPU kernels, as on builds without
    # oneDNN. A single grouped convolution cannot train there; ours trains,
    # in float32 and in mixed precision, one convolution per group.
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_ONEDNN],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TRAINED" in result.stdout
    # The case the per-group route exists for is real on this build.
    assert "PLAIN GROUPED FAILS" in result.stdout


LOAD_WITHOUT_ONEDNN = """
import sys
import numpy as np
from keras_blocks.deploy import ExportedModel
x, expected = np.load(sys.argv[1]), np.load(sys.argv[2])
print("DIFFERENCE", np.abs(ExportedModel(sys.argv[3])(x) - expected).max())
"""


def test_a_saved_model_runs_on_tensorflow_without_onednn(tmp_path):
    # Exported here (oneDNN runs one grouped convolution), served where
    # TensorFlow has no grouped CPU kernels: export_model traces one
    # convolution per group for SavedModels, so the file runs there too. A
    # grouped convolution with a bias and ReLU, which TensorFlow fuses.
    pytest.importorskip("onnxruntime")  # the export extra
    from keras_blocks.deploy import export_model
    from keras_blocks.layers import ConvBNAct

    inputs = keras.Input((8, 8, 4))
    unit = ConvBNAct(8, 3, groups=2, batch_norm=False, activation="relu")
    model = keras.Model(inputs, unit(inputs))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", keras.ops.convert_to_numpy(model(x)))
    path = export_model(model, tmp_path / "model", "tf_saved_model")
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_WITHOUT_ONEDNN,
            str(tmp_path / "x.npy"),
            str(tmp_path / "expected.npy"),
            path,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    difference = float(result.stdout.split("DIFFERENCE")[1])
    assert difference < 1e-5
