"""Every use of private Keras and TensorFlow API in keras_blocks, in one place.

Each function names what it does for the library, says why no public API
does it, and the versions it was checked on. A new Keras or TensorFlow
release is checked here (and by `tests/test_compat.py`), not throughout the
package; no other module imports `keras.src` or `tensorflow.python` (the test
scans the package for them).

Checked with Keras 3.15.1 and TensorFlow 2.21.0.
"""

import functools

# Keras exports neither the base of its image augmentation layers nor its
# symbolic-scope test.
from keras.src.backend.common.symbolic_scope import in_symbolic_scope
from keras.src.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (  # noqa: E501
    BaseImagePreprocessingLayer,
)

# The base of Keras' image augmentation layers (`RandomFlip`, `RandomContrast`
# and the rest), which Keras does not export. Deriving from it is how they run
# inside a `tf.data` pipeline on every backend: in a TensorFlow graph it
# switches `self.backend` to TensorFlow, converts the layer's weights, and
# hands out a TensorFlow seed generator made from `self.seed`; it also takes
# single images and `{"images": ..., "labels": ...}` dictionaries. A class to
# derive from, so a name rather than a function. (Keras 3.15.1.)
ImageAugmentationBase = BaseImagePreprocessingLayer


def in_symbolic_call():
    """Whether the current call only traces shapes (a model being built, or
    loaded before its weights are), so that it computes nothing real.

    Keras' own `in_symbolic_scope`, which it does not export. (Keras 3.15.1.)
    """
    return in_symbolic_scope()


def augmentation_seed_generator(layer):
    """The seed generator an `ImageAugmentationBase` layer draws from when
    called without a seed: a TensorFlow one inside a `tf.data` graph, the
    layer's own elsewhere.

    Keras' augmentation layers call the private `_get_seed_generator` of the
    base for it; there is no public way. (Keras 3.15.1.)
    """
    return layer._get_seed_generator(layer.backend.name)


def nested_layers(layer, *, recursive, include_self=False):
    """The layers inside `layer`: its own sublayers (`recursive=False`) or
    those at every depth, `layer` first with `include_self`.

    Keras lists them with the private `_flatten_layers` only: `Model.layers`
    holds a model's top level, and a layer has no public list of its
    sublayers. (Keras 3.15.1.)
    """
    return list(layer._flatten_layers(include_self=include_self, recursive=recursive))


def outbound_nodes(layer):
    """The nodes of the functional graphs that call `layer`'s output (each
    with the `.operation` that reads it): none for a layer in no graph.

    Keras keeps them in the private `_outbound_nodes` and has no public way
    to follow a graph forwards. (Keras 3.15.1.)
    """
    return list(getattr(layer, "_outbound_nodes", ()))


def layer_trainable(layer):
    """`layer.trainable`, and True where `Layer.__init__` has not set it yet
    (the public property fails there). (Keras 3.15.1: `_trainable`.)"""
    return getattr(layer, "_trainable", True)


def has_been_called(model):
    """Whether `model` has been called, which Keras' exporters need (they
    read the input signature of the first call). Keras keeps it in the
    private `_called`. (Keras 3.15.1.)"""
    return getattr(model, "_called", False)


def learning_rate_as_given(optimizer):
    """The optimizer's learning rate as it holds it: its variable, or the
    `LearningRateSchedule` it was given.

    The public `optimizer.learning_rate` computes a schedule's current value
    instead. (Keras 3.15.1: `_learning_rate`.)
    """
    return optimizer._learning_rate


def replace_learning_rate(optimizer, rate):
    """Makes `rate` (a variable or a `LearningRateSchedule`) the learning rate
    `optimizer` reads from its next traced step.

    The public setter untracks the rate variable when given a schedule (a
    warmup over a float rate wraps that variable, which must stay in the
    optimizer's saved state), and refuses to put the variable back in place
    of the schedule at the end.
    (Keras 3.15.1: `_learning_rate`.)
    """
    optimizer._learning_rate = rate


def set_initial_epoch(model, epoch):
    """Makes the `fit` now beginning start from `epoch` (None: from its
    `initial_epoch` argument).

    Keras' `fit` reads the private `_initial_epoch` after its callbacks'
    `on_train_begin`; `keras.callbacks.BackupAndRestore` resumes the same
    way. There is no public way. (Keras 3.15.1.)
    """
    model._initial_epoch = epoch


@functools.cache
def is_onednn_enabled():
    """Whether TensorFlow's CPU kernels are oneDNN's (x86-64 Linux builds by
    default; `TF_ENABLE_ONEDNN_OPTS=0` turns them off).

    TensorFlow tells it through its private `_pywrap_util_port.IsMklEnabled`
    only. (TensorFlow 2.21.0.)
    """
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
