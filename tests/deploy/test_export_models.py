"""Every reference model exports for deployment, and the exported file
computes what Keras does.

Each model is exported by `keras_blocks.deploy.export_model` to every format
Keras exports from the backend (SavedModel, LiteRT and ONNX from TensorFlow;
ONNX from PyTorch), read back by the format's own runtime (`ExportedModel`:
`tf.saved_model.load`, the LiteRT interpreter, ONNX Runtime) and run on the
same random batch as Keras: outputs equal within 1e-5 of the logits' scale.
Models are built once per test at their smallest input size, with `CLASSES`
(10) classes, random weights and BN statistics (`randomize`; see `build` for
EfficientNet and SE-ResNet) and no classifier activation; AlexNet and VGG
without their 4096-unit dense head (`TRIMMED`).

Checked independently of our code: the LiteRT files hold TFLite's builtin
operators only (read by the interpreter), the ONNX graphs of the grouped
models hold grouped (or per-group) `Conv` nodes and load in ONNX Runtime
(read with the `onnx` package), and TensorFlow traces a grouped `ConvBNAct`
with no XLA-compiled call in it (Keras' own grouped `Conv2D` has one: the call
that tf2onnx leaves in the graph, which ONNX Runtime refuses).

One model per family (`FAMILY_MEMBERS`, but those `COVERED` by the others) by
default; `KERAS_BLOCKS_ALL_MODELS=1` exports every model of `train.MODELS`,
whole (see tools/export_table.py for the table of all of them).
"""

import concurrent.futures
import json
import multiprocessing
import os

import keras
import numpy as np
import pytest

from tests.models.model_checks import FAMILY_MEMBERS, randomize

pytest.importorskip("sklearn")  # the examples extra

from examples import train  # after the skip: it needs scikit-learn
from keras_blocks import layers
from keras_blocks.deploy import ExportedModel, export_model

BACKEND = keras.config.backend()
ALL = os.environ.get("KERAS_BLOCKS_ALL_MODELS") == "1"
# Family members whose export checks nothing the others' does not, and which.
COVERED = {
    # Its bottleneck blocks are ResNeXt-50's without the groups (ONNX from
    # TensorFlow), its SqueezeExcite is EfficientNet-B0's (every format),
    # BottleneckBlock(se_ratio=...) is exported as a layer in
    # tests/layers/test_properties.py: 40 s of TensorFlow's pass for no new
    # operation.
    "se_resnet50": "resnext50_32x4d's bottleneck blocks, efficientnet_b0's SE",
}
NAMES = (
    tuple(train.MODELS)
    if ALL
    else tuple(name for name in FAMILY_MEMBERS if name not in COVERED)
)
# What is exported from each backend. JAX: nothing here (Keras exports ONNX
# from it through jax2onnx, which the export extra does not install; its
# SavedModel export, through jax2tf, is not checked by these tests).
FORMATS = {
    "tensorflow": ("tf_saved_model", "litert", "onnx"),
    "torch": ("onnx",),
    "jax": (),
}[BACKEND]
FILE_NAMES = {"tf_saved_model": "model", "litert": "model.tflite", "onnx": "model.onnx"}
TOLERANCE = 1e-5
# The classes of every model built here (and of the docs' export table): the
# builders' default, 1000, makes the classifier 100 times larger.
CLASSES = 10
# In CI, the models exported to every format; the others, of the blocks these
# have (bottleneck, SE, grouped, VGG's), to ONNX, where Keras' grouped
# convolution failed: a LiteRT conversion of a ResNet-50 costs about 20 s.
# tools/export_table.py's table has every model in every format.
EVERY_FORMAT = (
    "cifar_resnet20",
    "cifar10_cnn",
    "alexnet",
    "googlenet_aux",
    "efficientnet_b0",
)
# Models with a grouped convolution (AlexNet's groups=2, ResNeXt's 32).
GROUPED = ("alexnet", "alexnet_no_lrn", "resnext50_32x4d", "resnext101_32x8d")
# PyTorch: models not exported there, and why. The ResNet-50s took 57-79 s
# each to build and export on two busy cores (ResNet-18 21 s); their
# bottleneck blocks are exported from TensorFlow, grouped convolutions from
# PyTorch too within AlexNet, squeeze-and-excitation within EfficientNet-B0.
RESNET50_COST = "57-79 s to build and export from PyTorch: exported from TensorFlow"
TORCH_SKIPPED = {
    "resnet50v2": RESNET50_COST,
    "se_resnet50": RESNET50_COST,
    "resnext50_32x4d": RESNET50_COST,
    "googlenet_aux": "torch.onnx's exporter fails on it (SymbolicValueError on a "
    "Cast in a shape list; reported): exported from TensorFlow",
}

# Trimmed configurations of the families whose dense head dwarfs the rest:
# AlexNet's and VGG's two 4096-unit layers hold 18 M of AlexNet's 20 M and 19 M
# of VGG-11-BN's 28 M parameters (smallest input, 10 classes), and export
# Flatten, Dense and Dropout, which CIFAR10CNN's head exports in every format.
# Without them (`include_top=False`, global average pooling) every other layer
# of the model still exports: AlexNet's grouped convolutions, LRN and
# overlapping pooling, VGG-BN's biased convolutions before BN.
# `KERAS_BLOCKS_ALL_MODELS=1` and tools/export_table.py export whole models.
HEADLESS = {"include_top": False, "pooling": "avg"}
TRIMMED = {} if ALL else {"alexnet": HEADLESS, "vgg11_bn": HEADLESS}

requires_tensorflow = pytest.mark.backends(
    "tensorflow", reason="a TensorFlow export or trace"
)
exporting_backends = pytest.mark.backends(
    "tensorflow",
    "torch",
    reason="SavedModel, LiteRT and ONNX through tf2onnx from TensorFlow, ONNX "
    "through torch.onnx from PyTorch (JAX: jax2onnx, which the export extra "
    "does not install)",
)


def model_params(names):
    """`names` as parameters, each with its backends: TensorFlow's alone where
    PyTorch skips them. (A parameter's mark, not the function's: pytest's
    closest marker is the function's own decorator before its parameter's.)"""
    return [
        pytest.param(
            name,
            marks=pytest.mark.backends(
                "tensorflow", reason=f"PyTorch: {TORCH_SKIPPED[name]}"
            )
            if name in TORCH_SKIPPED
            else exporting_backends,
        )
        for name in names
    ]


def first_output(outputs):
    """The first output as NumPy (GoogLeNet's main logits before aux1, aux2)."""
    if isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    return keras.ops.convert_to_numpy(outputs)


def build(name, **options):
    """Model `name` at its smallest input, with the tests' weights; `options`:
    its builder's others (`include_top`, `pooling`)."""
    keras.utils.set_random_seed(0)
    model = train.build(
        name,
        train.MODELS[name][1],
        classes=CLASSES,
        classifier_activation=None,
        **options,
    )
    if name.startswith("efficientnet"):
        # Random BN statistics leave EfficientNet's logits all but independent
        # of the input (1.1e-4 of their scale apart), so any file would pass;
        # its fresh weights keep the two inputs apart (BN's math is checked
        # in the other models and in every layer's export).
        return model
    if name.startswith("se_resnet"):
        # With randomize's spread, a random SE-ResNet-50's float32 logits are
        # 8.7e-5 of their scale from float64 (PyTorch backend): no float32
        # runtime can agree within 1e-5. A milder spread is well conditioned.
        randomize_mildly(model)
        return model
    randomize(model)
    return model


def randomize_mildly(model, seed=0):
    """BN scales and variances in [0.9, 1.1], means, shifts and biases of
    0.02 standard deviation."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if weight.path.endswith(("moving_variance", "gamma")):
            weight.assign(rng.uniform(0.9, 1.1, weight.shape).astype("float32"))
        elif weight.path.endswith(("beta", "moving_mean", "bias")):
            weight.assign(rng.normal(0, 0.02, weight.shape).astype("float32"))


def random_inputs(model, batch=2, seed=0):
    shape = (batch, *model.inputs[0].shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def assert_exports_match(model, x, directory, formats=FORMATS, expected=None):
    """Exports `model` to each format, runs the file in its runtime, and
    compares with `expected` (default: Keras' outputs). Returns the paths."""
    if expected is None:
        expected = first_output(model(x, training=False))
    scale = float(np.abs(expected).max())
    # Outputs that barely depend on the input would compare equal whatever
    # the export does.
    assert np.abs(expected[0] - expected[1]).max() >= 0.01 * scale
    paths = {}
    for format in formats:
        path = export_model(model, os.path.join(directory, FILE_NAMES[format]), format)
        exported = ExportedModel(path)
        assert exported.format == format
        difference = np.abs(first_output(exported(x)) - expected).max()
        assert difference <= TOLERANCE * scale, (format, difference / scale)
        if format == "litert":
            assert flex_ops(path) == []
        paths[format] = path
    return paths


def flex_ops(path):
    """The TensorFlow (Flex) operators in a .tflite file, as the LiteRT
    interpreter lists them: they need the Flex delegate, not on phones."""
    from ai_edge_litert.interpreter import Interpreter

    operators = Interpreter(model_path=path)._get_ops_details()
    return [op["op_name"] for op in operators if op["op_name"].startswith("Flex")]


def assert_grouped_onnx_graph(path, model):
    """The ONNX graph has grouped `Conv` nodes, or one per group (more than
    the model has kernels), is valid, and loads in ONNX Runtime."""
    import onnx
    import onnxruntime

    graph = onnx.load(path)
    onnx.checker.check_model(graph)
    convolutions = [node for node in graph.graph.node if node.op_type == "Conv"]
    groups = [
        attribute.i
        for node in convolutions
        for attribute in node.attribute
        if attribute.name == "group"
    ]
    kernels = [
        w for w in model.weights if w.path.endswith("kernel") and len(w.shape) == 4
    ]
    assert max(groups, default=1) > 1 or len(convolutions) > len(kernels)
    onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])


@pytest.mark.backend_independent(reason="names in two tables")
def test_names_are_models():
    assert set(FAMILY_MEMBERS) <= set(train.MODELS)
    assert set(GROUPED) <= set(train.MODELS)


# A bound on one model's build and exports in its own process: minutes on two
# busy cores; a stuck child fails the test instead of hanging the run.
FRESH_PROCESS_SECONDS = 1800


def in_a_fresh_process(function, *args):
    """`function(*args)` in a new Python process (its assertion errors come
    back). TensorFlow keeps what a process traced alive: exporting the
    models one after another in a pytest-xdist worker that had run the rest
    of the suite grew it past the machine's memory (OOM-killed at 13 GB).
    A child that dies (killed for memory) raises BrokenProcessPool at once: a
    multiprocessing.Pool replaced it and waited for its result forever."""
    pool = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn")
    )
    try:
        return pool.submit(function, *args).result(timeout=FRESH_PROCESS_SECONDS)
    except concurrent.futures.TimeoutError:
        for child in multiprocessing.active_children():
            child.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def check_model(name, directory, formats, data_format="channels_last"):
    keras.config.set_image_data_format(data_format)
    model = build(name, **TRIMMED.get(name, {}))
    if data_format == "channels_first":
        assert model.inputs[0].shape[1] == 3
    x = random_inputs(model)
    paths = assert_exports_match(model, x, directory, formats)
    if name in GROUPED:
        assert_grouped_onnx_graph(paths["onnx"], model)


@pytest.mark.slow
@pytest.mark.parametrize("name", model_params(NAMES))
def test_model_exports_with_equal_outputs(name, tmp_path):
    formats = FORMATS if ALL or name in EVERY_FORMAT else ("onnx",)
    in_a_fresh_process(check_model, name, str(tmp_path), formats)


@exporting_backends
@pytest.mark.slow
@pytest.mark.parametrize("name", ("alexnet", "cifar_resnet20"))
def test_channels_first_model_exports(name, tmp_path):
    # TensorFlow's CPU kernels take channels_last only: our Conv2D transposes
    # (Keras' own would not run), and so do the exports.
    in_a_fresh_process(check_model, name, str(tmp_path), FORMATS, "channels_first")


@requires_tensorflow
@pytest.mark.slow
def test_mixed_precision_model_exports_its_float32_computation(tmp_path):
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build("cifar_resnet20")
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.compute_dtype == "float16"
    x = random_inputs(model, batch=4)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.train_on_batch(x, np.arange(4) % 10)
    twin = train.build(
        "cifar_resnet20",
        train.MODELS["cifar_resnet20"][1],
        classes=10,
        classifier_activation=None,
    )
    twin.set_weights(model.get_weights())
    expected = first_output(twin(x, training=False))
    # The float16 computation is further off: the comparison tells them apart.
    mixed = first_output(model(x, training=False)).astype("float32")
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(mixed - expected).max() > 10 * TOLERANCE * scale
    assert_exports_match(model, x, tmp_path, expected=expected)


@requires_tensorflow
def test_litert_check_sees_flex_operators(tmp_path):
    """A model with a TensorFlow-only operator (erf): Keras' default export
    lets it into the file as a Flex operator, which `flex_ops` sees;
    `export_model` refuses it and leaves nothing behind."""
    import tensorflow as tf

    class Erf(keras.layers.Layer):
        def call(self, x):
            return tf.math.erf(x)

    model = keras.Sequential([keras.Input((4,)), Erf()])
    default = str(tmp_path / "default.tflite")
    model.export(default, format="litert", verbose=False)
    assert flex_ops(default) == ["FlexErf"]
    ours = tmp_path / "ours.tflite"
    with pytest.raises(Exception, match="Erf"):
        export_model(model, ours, "litert")
    assert sorted(os.listdir(tmp_path)) == ["default.tflite"]


def xla_compiled_calls(layer, shape):
    """The calls TensorFlow must compile with XLA in the traced `layer`: nodes
    of the graph and its function library marked `_XlaMustCompile`, and the
    library's functions so marked."""
    import tensorflow as tf

    function = tf.function(lambda x: layer(x, training=False))
    graph = function.get_concrete_function(tf.TensorSpec(shape, "float32")).graph
    graph = graph.as_graph_def()
    nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
    marked = [
        n.name
        for n in nodes
        if "_XlaMustCompile" in n.attr and n.attr["_XlaMustCompile"].b
    ]
    marked += [
        f.signature.name
        for f in graph.library.function
        if "_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b
    ]
    return marked


@requires_tensorflow
def test_grouped_convolution_traces_without_xla():
    shape = (None, 8, 8, 4)
    theirs = keras.layers.Conv2D(8, 3, groups=2)
    theirs.build(shape)
    # The check sees what breaks the ONNX export of Keras' grouped Conv2D.
    assert xla_compiled_calls(theirs, shape) != []
    ours = layers.ConvBNAct(8, 3, groups=2)
    ours.build(shape)
    assert xla_compiled_calls(ours, shape) == []


@pytest.mark.backend_independent(reason="the table's text depends on no backend")
def test_export_table_says_its_class_count():
    from tools import export_table

    rows = json.loads(export_table.RESULTS.read_text())["rows"]
    text = export_table.table(rows)
    # Its sizes are those of CLASSES-class classifiers, not the builders' 1000.
    assert f"Every model is built with {CLASSES} classes." in text
    assert export_table.SNIPPET.read_text() == text  # the docs show the tool's
