"""Fixtures of the workflow tests: what the benchmarks' smoke runs and the
commands' short runs pay for that their checks do not read."""

import gc

import keras
import pytest


@pytest.fixture
def without_forced_collections(monkeypatch):
    """`gc.collect()` made a no-op for a smoke run.

    The benchmarks' harness collects garbage before every timed call, and
    Keras' `clear_session` (before every build of a benchmark, and of each
    run of examples/course_experiments.py) collects too, so that a full
    benchmark's timings hold no collection and a long run frees each model.
    Each forced collection walks the whole heap, which TensorFlow's traced
    graphs (a ResNet50 training step keeps ~170,000 objects alive after
    `clear_session`) and the tests before this one in its pytest worker had
    grown to over a million objects: 1-5 s a collection, ~45% of a smoke run
    under TensorFlow (py-spy, outside pytest), most of the deploy section's
    (24 timed calls: 54 of its CPU seconds in one process after the other
    smoke runs, 8 alone), and 0.45 s each of the course experiments' 15
    under PyTorch with only this folder's tests before them. These runs
    check what their sections and runs write, not timings or memory; the
    automatic collections still run.
    """
    monkeypatch.setattr(gc, "collect", lambda generation=2: 0)


@pytest.fixture
def optimizers_built_at_compile(monkeypatch):
    """`Model.compile` building the optimizer of a built model at once.

    On TensorFlow without a distribution strategy, Keras leaves the
    optimizer's variables to the first trace of the training step; a
    `tf.function` that creates variables on its first trace is traced a
    second time, without them (`polymorphic_function`'s
    `_no_variable_creation_config`). Building them up front, as Keras'
    `_symbolic_build` does under a strategy, leaves one trace: a ResNet50
    training step's first call went from 16 to 8 CPU seconds. The step,
    its variables and what it computes are the same; a full benchmark's
    warm-up calls pay the second trace untimed.
    """
    compile = keras.Model.compile

    def compile_and_build(self, *args, **kwargs):
        compile(self, *args, **kwargs)
        if self.built and self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    monkeypatch.setattr(keras.Model, "compile", compile_and_build)


@pytest.fixture
def without_graph_optimizations():
    """TensorFlow's graph optimizer (Grappler) off while a smoke run runs.

    Each traced function is optimized (constant folding, layout, fusions)
    on its first call: ~25% of the first call of a ResNet50 or
    EfficientNetB0 training step (8.8 -> 6.9 CPU seconds), ~12% of the
    models, throughput and graphs smoke run (76 -> 67 CPU seconds, two runs
    of each, alternated). A smoke run reads no timing and no output of
    those calls; the `graphs` section counts the traced graph, before any
    optimization. Under TensorFlow with Grappler on, tests/layers trains
    each block a step (`check_layer`) and tests/models trains EfficientNet.
    """
    tf = pytest.importorskip("tensorflow")
    options = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    yield
    tf.config.optimizer.set_experimental_options(
        {"disable_meta_optimizer": options.get("disable_meta_optimizer", False)}
    )
