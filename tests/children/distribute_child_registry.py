"""Part of distribute_child_tf.py's process (test_distribute_registry_tf.py):
every layer of the property registry and reference models under
`MirroredStrategy` over 2 logical CPUs, which that script sets up.

Each case is built and compiled in the strategy's scope, `fit` for one step on
a global batch of 4 (2 images per replica), saved to `.keras`, loaded back with
`safe_mode=True` in the scope, and both models predict the same batch. Every
batch normalization is synchronized (`bn_synchronized=True`, and
`batch_norm=True` where a layer makes BN optional).

`main(DIRECTORY, STRATEGY, CASES, FILE)`: a case is a registry name or a
model of `keras_blocks.models` (none: every layer and
`SMALLEST_FAMILY_MEMBERS`); writes to FILE a JSON line with the number of
replicas, then one per case (its error, if any, instead of failing).
"""

import inspect
import json
import math
import os
import time
import traceback

import hypothesis
import keras
import numpy as np
import tensorflow as tf

from keras_blocks.models import get_model, model_entry
from tests.layers.test_properties import REGISTRY, configurations
from tests.models.model_checks import SMALLEST_FAMILY_MEMBERS, image_shape

GLOBAL_BATCH = 4  # 2 per replica
CLASSES = 10
# The smallest model of each family (AlexNet has no BN); the default cases.
CASES = (*sorted(REGISTRY), *SMALLEST_FAMILY_MEMBERS)


def registry_example(name):
    """(kwargs, input shape, output shape): the registry's second example
    under derandomized Hypothesis (its first is the smallest of everything,
    one channel and one pixel), the same on every run."""
    found = []

    @hypothesis.settings(
        max_examples=2,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(configurations(REGISTRY[name]))
    def draw(example):
        found.append(example)

    draw()
    return found[-1]


def layer_case(name):
    """A model around the layer of `name`, with data for a regression step."""
    spec = REGISTRY[name]
    kwargs, input_shape, output_shape = registry_example(name)
    kwargs = dict(kwargs)
    if "batch_norm" in kwargs:
        kwargs["batch_norm"] = True
    if "bn_synchronized" in inspect.signature(spec.cls).parameters:
        kwargs["bn_synchronized"] = True
    rng = np.random.default_rng(0)
    x = rng.standard_normal((GLOBAL_BATCH, *input_shape[1:])).astype("float32")
    y = rng.standard_normal((GLOBAL_BATCH, *output_shape[1:])).astype("float32")

    def build():
        inputs = keras.Input(input_shape[1:])
        return keras.Model(inputs, spec.cls(**kwargs)(inputs))

    return build, x, y, "mse", kwargs


def model_case(name):
    """A reference model with 10 classes at its smallest input."""
    size = model_entry(name).min_size
    kwargs = {} if name.startswith("alexnet") else {"bn_synchronized": True}
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (GLOBAL_BATCH, *image_shape(size))).astype("float32")
    y = rng.integers(0, CLASSES, GLOBAL_BATCH)

    def build():
        return get_model(name, input_shape=image_shape(size), classes=CLASSES, **kwargs)

    loss = "sparse_categorical_crossentropy"
    return build, x, y, loss, {"input_size": size, **kwargs}


def synchronized_flags(model):
    # Keras has no public walk over sublayers (see test_distribute_models.py).
    return [
        layer.synchronized
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def run_case(strategy, name, directory):
    make = layer_case if name in REGISTRY else model_case
    build, x, y, loss, kwargs = make(name)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build()
        model.compile(keras.optimizers.SGD(0.01), loss)
    history = model.fit(
        x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0
    )
    path = os.path.join(directory, f"{name}.keras")
    model.save(path)
    with strategy.scope():
        loaded = keras.saving.load_model(path, safe_mode=True)
    expected = model(x, training=False)
    received = loaded(x, training=False)
    expected, received = tf.nest.map_structure(np.asarray, (expected, received))
    return {
        "kwargs": {key: repr(value) for key, value in kwargs.items()},
        "loss": float(history.history["loss"][0]),
        "difference": max(
            float(np.max(np.abs(a - b)))
            for a, b in zip(
                tf.nest.flatten(expected), tf.nest.flatten(received), strict=True
            )
        ),
        "synchronized": synchronized_flags(model),
        "loaded_synchronized": synchronized_flags(loaded),
    }


def main(directory, strategy, names, file):
    print(json.dumps({"replicas": strategy.num_replicas_in_sync}), file=file)
    for name in names or CASES:
        start, cpu = time.perf_counter(), time.process_time()
        try:
            result = run_case(strategy, name, directory)
            result["error"] = None
            if not math.isfinite(result["loss"]):
                result["error"] = f"loss {result['loss']}"
        except Exception as error:  # reported to the parent, case by case
            result = {"error": f"{type(error).__name__}: {error}"[:2000]}
            traceback.print_exc()
        result["case"] = name
        result["seconds"] = round(time.perf_counter() - start, 2)
        result["cpu_seconds"] = round(time.process_time() - cpu, 2)
        print(json.dumps(result), file=file, flush=True)
