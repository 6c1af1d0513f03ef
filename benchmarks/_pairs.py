"""The model pairs that `models`, `throughput` and `graphs` compare: ours and
keras.applications', built and compiled alike, and a random batch for them."""

import keras
import numpy as np

from benchmarks import _harness
from keras_blocks import efficientnet
from keras_blocks.models import resnet


def model_pairs(args):
    """(name, ours, reference) of the compared models, built and compiled
    alike: the same seed, optimizer, loss, dtype policy and `jit_compile`."""
    shape = (args.image_size, args.image_size, 3)
    builders = {
        "ResNet50": (
            lambda: resnet.ResNet(50, layout="keras_applications", input_shape=shape),
            lambda: keras.applications.ResNet50(weights=None, input_shape=shape),
        ),
        "EfficientNetB0": (
            lambda: efficientnet.EfficientNetB0(input_shape=shape),
            lambda: keras.applications.EfficientNetB0(weights=None, input_shape=shape),
        ),
    }
    for name, (build_ours, build_reference) in builders.items():
        _harness.clear_session()
        built = []
        for build in (build_ours, build_reference):
            keras.utils.set_random_seed(0)
            model = build()
            model.compile(
                keras.optimizers.SGD(0.01, momentum=0.9),
                "sparse_categorical_crossentropy",
                jit_compile=args.jit_compile,
            )
            built.append(model)
        ours, reference = built
        assert ours.count_params() == reference.count_params(), name
        yield name, ours, reference


def batch(args, batch_size):
    """A random batch of images and labels, as tensors of the backend (on
    its default device: the GPU when there is one)."""
    rng = np.random.default_rng(0)
    shape = (batch_size, args.image_size, args.image_size, 3)
    x = rng.uniform(0, 255, shape).astype("float32")
    y = rng.integers(0, 1000, batch_size)
    return keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)


def describe_input(args, batch_size):
    return (
        f"{batch_size}x{args.image_size}x{args.image_size}x3, "
        f"{keras.config.dtype_policy().name}"
    )
