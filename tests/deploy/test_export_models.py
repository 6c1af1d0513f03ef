"""Every reference model family exports for deployment, and the exported file
computes what Keras does.

Each family's model is exported by `keras_blocks.deploy.export_model` to every
format Keras exports from the backend (SavedModel, LiteRT and ONNX from
TensorFlow; ONNX from PyTorch), read back by the format's own runtime
(`ExportedModel`: `tf.saved_model.load`, the LiteRT interpreter, ONNX
Runtime) and run on the same random batch as Keras: every output equal within
1e-5 of its scale. Models are built once per test at their smallest input
size, with `CLASSES` (10) classes, random weights and BN statistics
(`randomize`; see `_with_test_weights` for EfficientNet and SE-ResNet) and
no classifier activation.

What a case checks is which layers export through which path, so each is
the family's model made as small as its layers allow (`SMALLER`, `PREFIX`,
`TAIL`, `OPTIONS`): fewer repeats of the same blocks, or the model without
the blocks that repeat kinds it has. `COVERAGE` says which case exports each
layer kind in each format.

Checked independently of our code: the LiteRT files hold TFLite's builtin
operators only (read by the interpreter), the ONNX graphs of the grouped
models hold grouped (or per-group) `Conv` nodes and load in ONNX Runtime
(read with the `onnx` package), and TensorFlow traces a grouped `ConvBNAct`
with no XLA-compiled call in it (Keras' own grouped `Conv2D` has one: the call
that tf2onnx leaves in the graph, which ONNX Runtime refuses).

One model per family (`FAMILY_MEMBERS`, but those `COVERED` by the others) by
default; `KERAS_BLOCKS_ALL_MODELS=1` exports every model of `list_models()`,
whole, each in a process of its own (see tools/export_table.py for the table
of all of them).
"""

import concurrent.futures
import functools
import itertools
import json
import multiprocessing
import os

import keras
import numpy as np
import pytest

from keras_blocks import efficientnet, layers
from keras_blocks.deploy import ExportedModel, export_model
from keras_blocks.models import cifar_resnet, get_model, list_models, model_entry
from tests.models.model_checks import FAMILY_MEMBERS, image_shape, randomize

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
    # Its stem (7x7/2 ConvBNAct with symmetric padding, ZeroPadding2D, 3x3/2
    # max pooling) and its projection shortcuts (1x1 ConvBNAct, strides 1 and
    # 2: `_residual`'s, which the bottleneck block shares) are ResNeXt-50's,
    # its basic blocks (identity and strided) the CIFAR ResNet's, its head
    # every model's: 14-16 s of each pass for no new layer.
    "resnet18": "resnext50_32x4d's stem and projections, cifar_resnet20's basic blocks",
}
NAMES = (
    tuple(list_models())
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
# PyTorch: models not exported there, and why. The whole ResNet-50s took 57-79
# s each to build and export on two busy cores (`KERAS_BLOCKS_ALL_MODELS=1`);
# their blocks are exported from PyTorch too in the smaller cases (`PREFIX`,
# `TAIL`), squeeze-and-excitation within EfficientNet-B0.
RESNET50_COST = "57-79 s to build and export from PyTorch: exported from TensorFlow"
RESNET50S = ("resnet50v2", "se_resnet50", "resnext50_32x4d")
TORCH_SKIPPED = {
    **(dict.fromkeys(RESNET50S, RESNET50_COST) if ALL else {}),
    "googlenet_aux": "torch.onnx's exporter fails on it (SymbolicValueError on a "
    "Cast in a shape list; reported): exported from TensorFlow",
}

# How each case is made smaller than its reference model, keeping every kind of
# layer it has (the export time goes with the layers traced and, for ONNX from
# TensorFlow, with the weights: tf2onnx copied ResNet-50's 94 MB of constants
# for 20-60 s and 9.6 GB of memory). `KERAS_BLOCKS_ALL_MODELS=1` and
# tools/export_table.py export the whole models.
#
# The family's builder with fewer repeats of the same blocks:
SMALLER = {
    # ResNet-8, the family's smallest (6n + 2, n = 1): one block per stage,
    # with an identity shortcut in the first stage and a strided zero-padded
    # one in the others; ResNet-20 has these, then two more identity blocks
    # a stage.
    "cifar_resnet20": functools.partial(cifar_resnet.CIFARResNet, 8),
    # B0's stage table at half depth, its widths: each of the seven stages'
    # first blocks (kernels 3 and 5, strides 1 and 2, expansion 1 and 6, SE),
    # and a repeated (identity-residual, DropPath) block of kernel 3 (stage 4)
    # and 5 (stages 5, 6); 10 blocks of 16.
    "efficientnet_b0": functools.partial(
        efficientnet.EfficientNet,
        depth_coefficient=0.5,
        include_preprocessing=False,
        name="efficientnet_b0",
    ),
}
# The reference model up to these layers (its outputs, in this order): the
# layers after them repeat kinds before them, with more channels, and end
# with the head of every other model (global average pooling, dropout, dense).
PREFIX = {
    # The stem, stage 2 (a projection shortcut of stride 1, identity ones) and
    # stage 3's first block (projection of stride 2): 0.6 M of 23 M weights.
    "resnext50_32x4d": ("conv3_block1",),
    "resnet50v2": ("conv3_block1",),  # preactivated, and its `TAIL`
    # A stage of one and one of two biased convolutions with BN, each pooled.
    "vgg11_bn": ("block3_pool",),
    # The stem, two "same" poolings, inception 3a, 3b and 4a, and the first
    # auxiliary classifier (5x5/3 average pooling, 1x1 convolution, flatten,
    # dense, dropout, dense): a model of several outputs.
    "googlenet_aux": ("inception_4a", "aux1"),
}
# And the reference model from this layer to its outputs, on inputs of that
# layer's (a second model the case exports): ResNet-50 v2's final BN and ReLU
# (Keras' own layers), which follow its last stage, and its head. Whole, its
# ONNX export from TensorFlow took 25 s in CI (79 s on busy cores), and 9.6 GB.
TAIL = {"resnet50v2": "post_bn"}
# The builder's other options per case. AlexNet's and VGG's two 4096-unit
# layers hold 18 M of AlexNet's 20 M and 19 M of VGG-11-BN's 28 M parameters
# (smallest input, 10 classes): without them (`include_top=False`, global
# average pooling) every other layer still exports: AlexNet's grouped
# convolutions, LRN and overlapping pooling, VGG-BN's biased convolutions
# before BN. Their Flatten, Dense and Dropout are CIFAR10CNN's head with
# `flatten=True` (the course's switch), in every format.
HEADLESS = {"include_top": False, "pooling": "avg"}
OPTIONS = {"alexnet": HEADLESS, "vgg11_bn": HEADLESS, "cifar10_cnn": {"flatten": True}}

# Which case exports each kind of layer in each format (SM: SavedModel, LR:
# LiteRT, ONNX-TF: ONNX through tf2onnx, ONNX-PT: ONNX through torch.onnx;
# "same": the case of the first column). Every kind the whole models of the
# cases had is here (what `SMALLER` and `PREFIX` leave out repeats it), and
# ResNet-18's (`COVERED`). `tests/layers/test_properties.py` exports every
# keras_blocks layer alone, in every format; these are the layers as the
# reference models use them.
COVERAGE = """
layer kind                                       SM, LR, ONNX-TF    ONNX-PT
ConvBNAct (conv, BN folded, ReLU), GAP + Dense   cifar_resnet20     same
ResidualBlock: identity, zero-pad shortcut       cifar_resnet20     same
MaxPooling2D 2x2, Flatten, Dense ReLU, Dropout   cifar10_cnn        same
grouped ConvBNAct (groups=2), biased, no BN      alexnet            same
LRN, 3x3/2 max pooling, 11x11/4 valid conv       alexnet            same
MBConvBlock (expansion, depthwise, SE, swish,    efficientnet_b0    same
  identity residual, DropPath), 3x3/2 "same"
InceptionModule, 3x3/2 "same" max pooling,       googlenet_aux      - (fails)
  7x7/2 symmetric-padding stem, aux classifier
  (5x5/3 average pooling, Flatten), 2 outputs
ResNet stem (ZeroPadding2D), projection          resnext50_32x4d    same
  shortcuts (1x1/1, 1x1/2), grouped (32)         (ONNX-TF only)
  BottleneckBlock, v1
preactivated BottleneckBlock and stem, final     resnet50v2         same
  Keras BatchNormalization and ReLU              (ONNX-TF only)
Fused-MBConv (fused 3x3 expansion, no SE),      efficientnet_v2_b0 same
  constant Normalization of the inputs
biased conv + BN (VGG-BN), 2x2/2 max pooling     vgg11_bn           same
                                                 (ONNX-TF only)
channels_first: all of AlexNet and ResNet-8      alexnet,           same
  (transposes, grouped, LRN, zero-pad channels)  cifar_resnet20
mixed precision's float32 twin                   cifar_resnet20     -
"""

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


def numpy_outputs(outputs):
    """Every output as NumPy, in Keras' order (GoogLeNet's main one first)."""
    return [keras.ops.convert_to_numpy(y) for y in keras.tree.flatten(outputs)]


def build(name, **options):
    """Model `name`, whole, at its smallest input, with the tests' weights;
    `options`: its builder's others (`include_top`, `pooling`)."""
    return _with_test_weights(name, _whole(name, options))


def _whole(name, options):
    keras.utils.set_random_seed(0)
    return get_model(
        name,
        input_shape=image_shape(model_entry(name).min_size),
        classes=CLASSES,
        classifier_activation=None,
        **options,
    )


def case_models(name):
    """The models a case exports: `name`'s made smaller (`SMALLER`, `PREFIX`,
    `OPTIONS`) and its `TAIL`, or whole with `KERAS_BLOCKS_ALL_MODELS=1`."""
    if ALL:
        return [build(name)]
    options = OPTIONS.get(name, {})
    if name in SMALLER:
        keras.utils.set_random_seed(0)
        model = SMALLER[name](
            input_shape=image_shape(model_entry(name).min_size),
            classes=CLASSES,
            classifier_activation=None,
            **options,
        )
    else:
        model = _whole(name, options)
    model = _with_test_weights(name, model)
    models = [model]
    if name in PREFIX:
        outputs = [model.get_layer(layer).output for layer in PREFIX[name]]
        outputs = outputs[0] if len(outputs) == 1 else outputs
        models = [keras.Model(model.input, outputs, name=f"{model.name}_prefix")]
    if name in TAIL:
        models.append(tail(model, TAIL[name]))
    return models


def tail(model, first):
    """`model` from its layer `first` on (a chain of layers to its output), on
    inputs of that layer's shape."""
    chain = model.layers[[layer.name for layer in model.layers].index(first) :]
    for before, after in itertools.pairwise(chain):
        assert after.input is before.output, f"{after.name}: not a chain"
    inputs = keras.Input(chain[0].input.shape[1:])
    x = inputs
    for layer in chain:
        x = layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_tail")


def _with_test_weights(name, model):
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
    compares every output with `expected` (default: Keras' outputs). Returns
    the paths."""
    if expected is None:
        expected = numpy_outputs(model(x, training=False))
    scales = [float(np.abs(y).max()) for y in expected]
    for y, scale in zip(expected, scales, strict=True):
        # Outputs that barely depend on the input would compare equal
        # whatever the export does.
        assert np.abs(y[0] - y[1]).max() >= 0.01 * scale
    paths = {}
    for format in formats:
        path = export_model(model, os.path.join(directory, FILE_NAMES[format]), format)
        exported = ExportedModel(path)
        assert exported.format == format
        outputs = numpy_outputs(exported(x))
        assert len(outputs) == len(expected), format
        for index, (got, want, scale) in enumerate(
            zip(outputs, expected, scales, strict=True)
        ):
            difference = np.abs(got - want).max()
            assert difference <= TOLERANCE * scale, (format, index, difference / scale)
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
    assert set(FAMILY_MEMBERS) <= set(list_models())
    assert set(GROUPED) <= set(list_models())
    assert set(SMALLER) | set(PREFIX) | set(TAIL) | set(OPTIONS) <= set(NAMES)
    assert not set(SMALLER) & set(PREFIX)
    if not ALL:  # the table names every case
        assert all(name in COVERAGE for name in NAMES)


# A bound on one model's build and exports in its own process: minutes on two
# busy cores; a stuck child fails the test instead of hanging the run.
FRESH_PROCESS_SECONDS = 1800


def in_a_fresh_process(function, *args):
    """`function(*args)` in a new Python process (its assertion errors come
    back). TensorFlow keeps what a process traced alive: exporting the whole
    models one after another in a pytest-xdist worker that had run the rest
    of the suite grew it past the machine's memory (OOM-killed at 13 GB;
    tf2onnx alone took 9.6 GB for ResNet-50 v2). A child that dies (killed
    for memory) raises BrokenProcessPool at once: a multiprocessing.Pool
    replaced it and waited for its result forever."""
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
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format(data_format)
    try:
        for index, model in enumerate(case_models(name)):
            if data_format == "channels_first" and index == 0:
                assert model.inputs[0].shape[1] == 3
            folder = os.path.join(directory, str(index))
            os.mkdir(folder)
            paths = assert_exports_match(model, random_inputs(model), folder, formats)
            if name in GROUPED and index == 0:
                assert_grouped_onnx_graph(paths["onnx"], model)
    finally:
        keras.config.set_image_data_format(previous)


def export_case(name, *args):
    """`check_model(name, *args)`: here for the smaller models (under 3 GB
    of memory in all; a spawned child's imports cost more than most of them,
    5-8 s of PyTorch's 15-17 s a model), in a new process for every whole
    model (`KERAS_BLOCKS_ALL_MODELS=1`)."""
    if ALL:
        in_a_fresh_process(check_model, name, *args)
    else:
        check_model(name, *args)


@pytest.mark.slow
@pytest.mark.parametrize("name", model_params(NAMES))
def test_model_exports_with_equal_outputs(name, tmp_path):
    formats = FORMATS if ALL or name in EVERY_FORMAT else ("onnx",)
    export_case(name, str(tmp_path), formats)


@exporting_backends
@pytest.mark.slow
@pytest.mark.parametrize("name", ("alexnet", "cifar_resnet20"))
def test_channels_first_model_exports(name, tmp_path):
    # TensorFlow's CPU kernels take channels_last only: our Conv2D transposes
    # (Keras' own would not run), and so do the exports.
    export_case(name, str(tmp_path), FORMATS, "channels_first")


@requires_tensorflow
@pytest.mark.slow
def test_mixed_precision_model_exports_its_float32_computation(tmp_path):
    keras.config.set_dtype_policy("mixed_float16")
    try:
        (model,) = case_models("cifar_resnet20")
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.compute_dtype == "float16"
    x = random_inputs(model, batch=4)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.train_on_batch(x, np.arange(4) % 10)
    (twin,) = case_models("cifar_resnet20")
    twin.set_weights(model.get_weights())
    (expected,) = numpy_outputs(twin(x, training=False))
    # The float16 computation is further off: the comparison tells them apart.
    (mixed,) = numpy_outputs(model(x, training=False))
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(mixed.astype("float32") - expected).max() > 10 * TOLERANCE * scale
    assert_exports_match(model, x, tmp_path, expected=[expected])


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
