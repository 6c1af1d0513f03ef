"""Preprocessing inside a model exports as constants: one image input.

Each preprocessing layer a user puts in a model (Keras' and keras_blocks'
augmentation, which is identity or a centre crop at inference) in a tiny
model, exported by `export_model` to each format the backend writes, and run
by the format's own runtime called directly (not `ExportedModel`): the file
takes the image alone, and computes what Keras does. ONNX from TensorFlow made
the statistics given to `Normalization(mean=..., variance=...)` graph inputs.
"""

import functools

import keras
import numpy as np
import pytest

from keras_blocks import augmentation
from keras_blocks.deploy import export_model
from keras_blocks.layers import PCAColorAugmentation

pytest.importorskip("onnxruntime")  # the export extra

# Each format on the backends that export it: ONNX through tf2onnx from
# TensorFlow and torch.onnx from PyTorch (JAX's goes through jax2onnx, which the
# export extra does not install), SavedModel and LiteRT from TensorFlow.
FORMATS = [
    pytest.param(
        "onnx",
        marks=pytest.mark.backends(
            "tensorflow", "torch", reason="ONNX through tf2onnx and torch.onnx"
        ),
    ),
    *(
        pytest.param(
            format,
            marks=pytest.mark.backends(
                "tensorflow", reason=f"Keras exports {format} from TensorFlow only"
            ),
        )
        for format in ("tf_saved_model", "litert")
    ),
]
FILE_NAMES = {"tf_saved_model": "model", "litert": "model.tflite", "onnx": "model.onnx"}
SIZE = 8  # the images' height and width
CHANNELS_LAST = "channels_last"  # every layer's, whatever keras.json says


def images(count=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (count, SIZE, SIZE, 3)).astype("float32")


def adapted_pca():
    layer = PCAColorAugmentation(seed=1, data_format=CHANNELS_LAST)
    layer.adapt(images(16, seed=1))
    return layer


def adapted_normalization():
    layer = keras.layers.Normalization(axis=-1)
    layer.adapt(images(16, seed=1))
    return layer


# name: a function making the layer (each test makes its own)
LAYERS = {
    "normalization_given": lambda: keras.layers.Normalization(
        axis=-1, mean=[0.4, 0.5, 0.6], variance=[0.04, 0.09, 0.16]
    ),
    "normalization_adapted": adapted_normalization,
    "rescaling": lambda: keras.layers.Rescaling(2.0, offset=-1.0),
    "center_crop": lambda: keras.layers.CenterCrop(6, 6, data_format=CHANNELS_LAST),
    "resizing": lambda: keras.layers.Resizing(12, 12, data_format=CHANNELS_LAST),
    "pca_color_given": lambda: PCAColorAugmentation.imagenet(
        seed=1, data_format=CHANNELS_LAST
    ),
    "pca_color_adapted": adapted_pca,
    "cifar_augmentation": lambda: augmentation.cifar_augmentation(
        SIZE, 2, seed=0, data_format=CHANNELS_LAST
    ),
    "crop_flip_augmentation": lambda: augmentation.crop_flip_augmentation(
        6, SIZE, seed=0, data_format=CHANNELS_LAST
    ),
    "alexnet_augmentation": lambda: augmentation.alexnet_augmentation(
        6, SIZE, color=adapted_pca(), seed=0, data_format=CHANNELS_LAST
    ),
    "efficientnet_augmentation": lambda: augmentation.efficientnet_augmentation(
        6, SIZE, seed=0, data_format=CHANNELS_LAST
    ),
}


# The pipelines of augmentation layers. Building a model of one under PyTorch
# is Keras' symbolic call of each random layer on 83 images, then on 89 (to
# find which axes are dynamic), in training mode, and RandAugment's transforms
# loop over the images: 8 s each for three of them on busy cores, 100 s for
# EfficientNet's (42 s in CI); the ONNX export takes under a second.
PIPELINES = (
    "cifar_augmentation",
    "crop_flip_augmentation",
    "alexnet_augmentation",
    "efficientnet_augmentation",
)
# So under PyTorch their models take batches of 2 images (export_model runs
# the file on 2), which one symbolic call of 2 images builds. At inference a
# pipeline is a centre crop or the identity: the export of a batch of any size
# is `center_crop`'s (and every other layer's), which keeps 4 images.
FIXED_BATCH = 2


def batch_of(name):
    """The batch size the model of `name` takes: any (None), but for the
    pipelines under PyTorch."""
    if keras.config.backend() == "torch" and name in PIPELINES:
        return FIXED_BATCH
    return None


@functools.cache
def model_of(name):
    """`tiny_model` of the layer `name`, built once per process: the formats
    of one layer export the same model (exporting leaves it as it was)."""
    keras.utils.set_random_seed(0)
    return tiny_model(LAYERS[name](), batch_of(name))


def tiny_model(layer, batch_size=None):
    """The layer, then a 1x1 convolution: a model with weights after it."""
    inputs = keras.Input((SIZE, SIZE, 3), batch_size=batch_size)
    x = layer(inputs)
    outputs = keras.layers.Conv2D(2, 1, data_format=CHANNELS_LAST)(x)
    return keras.Model(inputs, outputs)


def run_onnx(path, x):
    import onnxruntime

    session = onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()]
    assert len(names) == 1, f"the graph's inputs: {names}"
    return session.run(None, {names[0]: x})[0]


def run_saved_model(path, x):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    (spec,) = loaded.serve.concrete_functions[0].structured_input_signature[0]
    assert tuple(spec.shape[1:]) == x.shape[1:]
    return loaded.serve(tf.constant(x)).numpy()


def run_litert(path, x):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    details = interpreter.get_input_details()
    assert len(details) == 1, f"the file's inputs: {[d['name'] for d in details]}"
    index = details[0]["index"]
    interpreter.resize_tensor_input(index, x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


RUNTIMES = {"onnx": run_onnx, "tf_saved_model": run_saved_model, "litert": run_litert}


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.slow) if name in PIPELINES else name
        for name in LAYERS
    ],
)
def test_preprocessing_exports_with_one_input(name, format, tmp_path):
    model = model_of(name)
    x = images(batch_of(name) or 4)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    path = export_model(model, tmp_path / FILE_NAMES[format], format)
    np.testing.assert_allclose(RUNTIMES[format](path, x), expected, atol=1e-5)
