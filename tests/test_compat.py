"""`keras_blocks._compat`: the one module that uses private Keras and
TensorFlow API (STYLE.md rule 22). The package is scanned for private
imports elsewhere, and each compat function is checked against the Keras or
TensorFlow installed, so that a release that moves what it wraps fails here.
"""

import ast
import os

import keras
import numpy as np
import pytest

from keras_blocks import _compat
from tests import ROOT

PACKAGE = ROOT / "keras_blocks"
PRIVATE_MODULES = ("keras.src", "tensorflow.python")
# The private attributes `_compat` wraps, read nowhere else in the package.
WRAPPED_ATTRIBUTES = {
    "_flatten_layers",
    "_outbound_nodes",
    "_learning_rate",
    "_initial_epoch",
    "_called",
    "_trainable",
    "_get_seed_generator",
    "_pywrap_util_port",
}
SCAN = pytest.mark.backend_independent(reason="reads the package's source")


def _private(module):
    return any(module == p or module.startswith(p + ".") for p in PRIVATE_MODULES)


def _dotted(node):
    """`a.b.c` for an attribute chain on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _uses(tree):
    """(line, what) of each private import, private module path in an
    attribute chain, or wrapped private attribute in `tree`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            names = [dotted] if dotted else []
            if node.attr in WRAPPED_ATTRIBUTES:
                yield node.lineno, f".{node.attr}"
        elif isinstance(node, ast.Constant) and node.value in WRAPPED_ATTRIBUTES:
            yield node.lineno, repr(node.value)  # getattr(x, "_called")
            continue
        else:
            continue
        for name in names:
            if _private(name):
                yield node.lineno, name


def _package_sources():
    for folder, _, files in os.walk(PACKAGE):
        for file in sorted(files):
            if file.endswith(".py"):
                yield os.path.join(folder, file)


@SCAN
def test_no_module_but_compat_uses_private_keras_or_tensorflow_api():
    found, scanned = [], 0
    for path in _package_sources():
        if path == str(PACKAGE / "_compat.py"):
            continue
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read(), path)
        scanned += 1
        relative = os.path.relpath(path, ROOT)
        found += [f"{relative}:{line}: {what}" for line, what in _uses(tree)]
    assert scanned > 20
    assert not found, "use keras_blocks._compat instead:\n" + "\n".join(found)


@SCAN
def test_the_scan_finds_each_kind_of_use():
    source = """
import keras.src.ops
from tensorflow.python.util import _pywrap_util_port
from keras.src import backend
x = keras.src.backend.common
model._initial_epoch = 3
getattr(model, "_called", False)
from keras import ops
from . import _relative
y = keras.ops.add
"""
    lines = {line for line, _ in _uses(ast.parse(source))}
    assert lines == {2, 3, 4, 5, 6, 7}, lines  # not the public ones after


@pytest.mark.backend_independent(reason="Keras' layer tracking is common code")
def test_nested_layers():
    from keras_blocks.layers import ConvBNAct

    unit = ConvBNAct(4, 3, strides=2, padding="symmetric", name="unit")
    unit.build((1, 8, 8, 3))
    own = [layer.name for layer in _compat.nested_layers(unit, recursive=False)]
    assert own == ["pad", "conv", "bn"]
    model = keras.Sequential([keras.Input((8, 8, 3)), unit])
    every = _compat.nested_layers(model, recursive=True, include_self=True)
    assert every[0] is model
    assert {"unit", "pad", "conv", "bn"} <= {layer.name for layer in every}


@pytest.mark.backend_independent(reason="Keras' functional graph is common code")
def test_outbound_nodes():
    inputs = keras.Input((2, 2, 1))
    flatten = keras.layers.Flatten()
    dense = keras.layers.Dense(1)
    keras.Model(inputs, dense(flatten(inputs)))
    assert [node.operation for node in _compat.outbound_nodes(flatten)] == [dense]
    assert _compat.outbound_nodes(dense) == []
    assert _compat.outbound_nodes(keras.layers.Dense(1)) == []


@pytest.mark.backend_independent(reason="Keras' layer flags are common code")
def test_layer_trainable():
    layer = keras.layers.Dense(1)
    assert _compat.layer_trainable(layer) is True
    layer.trainable = False
    assert _compat.layer_trainable(layer) is False
    assert _compat.layer_trainable(object()) is True  # before Layer.__init__


@pytest.mark.backend_independent(reason="Keras' layer call is common code")
def test_has_been_called():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert not _compat.has_been_called(model)
    model(np.zeros((1, 3), "float32"))
    assert _compat.has_been_called(model)


@pytest.mark.backend_independent(reason="Keras' optimizer attributes")
def test_learning_rate_as_given_and_replaced():
    optimizer = keras.optimizers.SGD(0.5)
    variable = _compat.learning_rate_as_given(optimizer)
    assert isinstance(variable, keras.Variable)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.25, 10, 0.5)
    _compat.replace_learning_rate(optimizer, schedule)
    assert _compat.learning_rate_as_given(optimizer) is schedule
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == 0.25
    _compat.replace_learning_rate(optimizer, variable)
    assert _compat.learning_rate_as_given(optimizer) is variable
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == 0.5


def test_set_initial_epoch():
    # Each backend's `fit` reads it after the callbacks' `on_train_begin`.
    class Resume(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            _compat.set_initial_epoch(self.model, 2)

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.zeros((2, 1), "float32")
    epochs = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: epochs.append(epoch)
    )
    model.fit(x, x, epochs=4, callbacks=[Resume(), record], verbose=0)
    assert epochs == [2, 3]
    _compat.set_initial_epoch(model, None)
    epochs.clear()
    model.fit(x, x, epochs=1, callbacks=[record], verbose=0)
    assert epochs == [0]


def test_in_symbolic_call():
    seen = []

    class Probe(keras.layers.Layer):
        def call(self, x):
            seen.append(_compat.in_symbolic_call())
            return x

    probe = Probe()
    probe(keras.Input((2,)))
    assert seen and all(seen)  # traced for shapes (once or more)
    seen.clear()
    probe(np.zeros((1, 2), "float32"))
    assert seen == [False]


@pytest.mark.backend_independent(reason="Keras' augmentation base class")
def test_image_augmentation_base_and_its_seed_generator():
    assert issubclass(keras.layers.RandomFlip, _compat.ImageAugmentationBase)
    flip = keras.layers.RandomFlip(seed=1)
    generator = _compat.augmentation_seed_generator(flip)
    assert isinstance(generator, keras.random.SeedGenerator)
    assert _compat.augmentation_seed_generator(flip) is generator


@pytest.mark.backends("tensorflow", reason="asks TensorFlow's build")
def test_is_onednn_enabled():
    enabled = _compat.is_onednn_enabled()
    assert isinstance(enabled, bool)
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        assert not enabled
