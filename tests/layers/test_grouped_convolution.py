"""Grouped convolutions on TensorFlow: our `Conv2D` takes no XLA detour.

Keras runs a grouped `Conv2D` on TensorFlow inside a nested XLA-compiled
function, which tf2onnx leaves as a call that ONNX Runtime refuses. Ours runs
one grouped convolution where TensorFlow can (a GPU, oneDNN's float32 CPU
kernels) and one convolution per group elsewhere. Both routes are compared
here with Keras' own grouped `Conv2D`, forward and gradients, whichever the
machine would pick; the grouped route is forced only where the machine runs
it (see `machine.py`). Processes with oneDNN turned off and on check the
predicate on both kinds of machine: the per-group route is taken where a
single grouped convolution cannot train, the grouped one where it can.

The process without oneDNN is started once (TensorFlow takes 10-15 s to
import) for the three checks that need one: the route predicate, a
SavedModel exported here, and `channels_first` under a CPU scope on a
machine with a GPU.
"""

import importlib.util

import keras
import numpy as np
import pytest

from tests.machine import run_tensorflow, skip_without_grouped_convolutions

pytestmark = pytest.mark.backends(
    "tensorflow",
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


@pytest.mark.slow
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
    from keras_blocks.layers import _tf_ops

    if route == "grouped":
        skip_without_grouped_convolutions()
    monkeypatch.setattr(
        _tf_ops, "runs_grouped", lambda dtype, on_cpu: route == "grouped"
    )
    theirs, ours, x = _pair(groups, data_format, strides, dilation_rate)
    # output, input gradient, kernel gradient, bias gradient
    for mine, keras_own in zip(
        _outputs_and_gradients(ours, x), _outputs_and_gradients(theirs, x), strict=True
    ):
        scale = np.abs(keras_own).max()
        np.testing.assert_allclose(mine, keras_own, atol=1e-5 * scale, rtol=0)


@pytest.mark.slow
def test_the_route_this_machine_takes():
    # Whatever the predicate decides here, the layer trains (fit) and predicts.
    from keras_blocks.layers import ConvBNAct

    model = keras.Sequential([keras.Input((8, 8, 4)), ConvBNAct(8, 3, groups=2)])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 4)).astype("float32")
    history = model.fit(x, np.zeros((4, 8, 8, 8), "float32"), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(x, verbose=0).shape == (4, 8, 8, 8)


ROUTE_PREDICATE = """
import keras, numpy as np
from tests.machine import convolution_error
from keras_blocks import _compat
from keras_blocks.layers import ConvBNAct, _tf_ops
print("ONEDNN", _compat.is_onednn_enabled())
for dtype in ("float32", "float16", "bfloat16"):
    runs = convolution_error(dtype, groups=2, device="/CPU:0") is None
    chosen = _tf_ops.runs_grouped(dtype, on_cpu=True)
    print("GROUPED", dtype, "RUNS" if runs else "FAILS", "CHOSEN" if chosen else "")
    # Never a route that fails; the grouped one wherever float32 trains it
    # (oneDNN's float16 and bfloat16 kernels need AVX-512).
    assert runs or not chosen, dtype
    assert dtype != "float32" or chosen == runs
x = np.random.default_rng(0).normal(size=(4, 8, 8, 4)).astype("float32")
y = np.zeros((4, 8, 8, 8), "float32")
for policy in ("float32", "mixed_float16", "mixed_bfloat16"):
    keras.config.set_dtype_policy(policy)
    if convolution_error(keras.config.dtype_policy().compute_dtype) is not None:
        # oneDNN without AVX-512: no convolution at all in this dtype, Keras'
        # own Conv2D fails as well.
        print("NO CONVOLUTIONS", policy)
        continue
    model = keras.Sequential([keras.Input((8, 8, 4)), ConvBNAct(8, 3, groups=2)])
    model.compile("sgd", "mse")
    loss = model.fit(x, y, epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss), policy
print("TRAINED")
"""


@pytest.mark.slow
@pytest.mark.parametrize("onednn", (False, True), ids=("without_onednn", "onednn"))
def test_the_route_predicate_on_machines_with_and_without_onednn(onednn, request):
    # A process with TensorFlow's oneDNN CPU kernels off (Eigen's, as on an
    # AMD EPYC or any build without oneDNN) or on (Intel's default): the
    # predicate picks one grouped convolution exactly where one trains, and
    # the layer trains on its choice in full and mixed precision.
    if onednn:
        output = run_tensorflow(ROUTE_PREDICATE, onednn=True)
    else:
        output = _part(request.getfixturevalue("without_onednn"), "route_predicate")
    assert "TRAINED" in output
    if onednn and "ONEDNN True" not in output:
        pytest.skip("this TensorFlow build has no oneDNN to turn on")
    if not onednn:
        # The case the per-group route exists for is real on this build, and
        # Eigen trained in every precision.
        assert "GROUPED float32 FAILS" in output
        assert "NO CONVOLUTIONS" not in output


LOAD_WITHOUT_ONEDNN = """
import sys
import numpy as np
from keras_blocks.deploy import ExportedModel
x, expected = np.load(sys.argv[1]), np.load(sys.argv[2])
print("DIFFERENCE", np.abs(ExportedModel(sys.argv[3])(x) - expected).max())
"""


# Run in the process without oneDNN, before anything else there: TensorFlow's
# CPU kernels have no NCHW convolution without oneDNN (its default off x86
# Linux). A GPU is simulated: TensorFlow is told it has one (until the end of
# this part).
CPU_SCOPE_ON_A_GPU_MACHINE = """
import numpy as np
import tensorflow as tf

gpu = tf.config.LogicalDevice("/job:localhost/replica:0/task:0/device:GPU:0", "GPU")
real = tf.config.list_logical_devices
tf.config.list_logical_devices = lambda kind=None: (
    [gpu] if kind == "GPU" else real(kind)
)
try:
    from keras_blocks.layers import ConvBNAct

    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype("float32")
    first = ConvBNAct(4, 3, data_format="channels_first")
    last = ConvBNAct(4, 3, data_format="channels_last")
    with tf.device("/CPU:0"):
        y = first(x).numpy()
        last.build((2, 8, 8, 3))
        last.set_weights(first.get_weights())
        expected = last(np.transpose(x, (0, 2, 3, 1))).numpy()
    np.testing.assert_allclose(y, np.transpose(expected, (0, 3, 1, 2)), atol=1e-5)
    print("EQUAL")
finally:
    tf.config.list_logical_devices = real
"""

# Each part in turn in one process, in a namespace of its own; a part that
# raises is reported, and the next runs.
RUN_PARTS = """
import sys, traceback
for name, code in PARTS:
    print("@@ PART", name, flush=True)
    try:
        exec(compile(code, name, "exec"), {"__name__": "__main__"})
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        print("FAILED", flush=True)
"""


@pytest.fixture(scope="module")
def without_onednn(tmp_path_factory):
    """The output of each part run in one process with oneDNN off: the
    CPU-scope check first (in a process where no layer has run yet, so that
    nothing decided earlier can pass it), a SavedModel exported here (with the
    export extra), and the route predicate."""
    parts, args = {"cpu_scope": CPU_SCOPE_ON_A_GPU_MACHINE}, []
    if importlib.util.find_spec("onnxruntime"):  # the export extra
        args = _export_grouped_saved_model(tmp_path_factory.mktemp("saved_model"))
        parts["saved_model"] = LOAD_WITHOUT_ONEDNN
    parts["route_predicate"] = ROUTE_PREDICATE
    code = f"PARTS = {list(parts.items())!r}\n{RUN_PARTS}"
    output = run_tensorflow(code, *args, onednn=False)
    return {
        section.split("\n", 1)[0]: section.split("\n", 1)[1]
        for section in output.split("@@ PART ")[1:]
    }


def _part(outputs, name):
    output = outputs[name]
    assert "FAILED" not in output.splitlines()[-1:], output[-3000:]
    return output


@pytest.mark.slow
def test_channels_first_under_a_cpu_scope_on_a_machine_with_a_gpu(without_onednn):
    # On a machine with a GPU, a call placed on the CPU must still take the
    # NHWC path: the decision is made per call, not once from whether a GPU
    # exists.
    assert "EQUAL" in _part(without_onednn, "cpu_scope")


def _export_grouped_saved_model(folder):
    """A grouped convolution with a bias and ReLU, which TensorFlow fuses,
    exported as a SavedModel: (its input, its Keras output, its path)."""
    from keras_blocks.deploy import export_model
    from keras_blocks.layers import ConvBNAct

    inputs = keras.Input((8, 8, 4))
    unit = ConvBNAct(8, 3, groups=2, batch_norm=False, activation="relu")
    model = keras.Model(inputs, unit(inputs))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
    np.save(folder / "x.npy", x)
    np.save(folder / "expected.npy", keras.ops.convert_to_numpy(model(x)))
    path = export_model(model, folder / "model", "tf_saved_model")
    return folder / "x.npy", folder / "expected.npy", path


@pytest.mark.slow
def test_a_saved_model_runs_on_tensorflow_without_onednn(request):
    # Exported here (oneDNN runs one grouped convolution), served where
    # TensorFlow has no grouped CPU kernels: export_model traces one
    # convolution per group for SavedModels, so the file runs there too.
    pytest.importorskip("onnxruntime")  # the export extra
    output = _part(request.getfixturevalue("without_onednn"), "saved_model")
    difference = float(output.split("DIFFERENCE")[1])
    assert difference < 1e-5
