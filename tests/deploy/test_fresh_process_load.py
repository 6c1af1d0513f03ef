"""The docs' loading claim: a `.keras` file of our layers loads in a new process
with `safe_mode=True` and no `custom_objects` once `keras_blocks` is imported,
and not before (the import is what registers the layers)."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_blocks import layers
from tests.layers.layer_checks import random_inputs

# Run in a new process, which has imported nothing of ours.
LOAD = """
import sys

import keras
import numpy as np

path, images, outputs = sys.argv[1:]
try:
    keras.saving.load_model(path, safe_mode=True)
except TypeError as error:
    print(str(error).splitlines()[-1][:80])
else:
    print("loaded before importing keras_blocks")
import keras_blocks  # noqa: E402, F401

model = keras.saving.load_model(path, safe_mode=True)
np.save(outputs, keras.ops.convert_to_numpy(model(np.load(images), training=False)))
"""


def every_layer():
    """A model holding one of each layer of `keras_blocks.layers`."""
    inputs = keras.Input((8, 8, 3))
    x = layers.ImagePreprocessing("unit")(inputs)
    x = layers.PCAColorAugmentation(seed=0)(x)
    x = layers.Normalization(mean=(0.5, 0.4, 0.3), variance=(0.1, 0.2, 0.3))(x)
    x = layers.ConvBNAct(8, 3)(x)
    x = layers.LocalResponseNormalization()(x)
    x = layers.ResidualBlock(8)(x)
    x = layers.BottleneckBlock(2, se_ratio=0.25)(x)  # 4 x 2 = 8 channels
    x = layers.SqueezeExcite()(x)
    x = layers.MBConvBlock(8, drop_path_rate=0.1)(x)
    x = layers.InceptionModule(2, 2, 2, 2, 2, 2)(x)  # 4 x 2 = 8 channels
    x = layers.DropPath(0.1)(x)
    x = layers.Dropout(0.1)(x)
    return keras.Model(inputs, x)


@pytest.mark.backend_independent(
    reason="registration happens on import, whatever the backend"
)
@pytest.mark.slow  # a new Python process imports Keras and its backend
def test_keras_file_loads_in_a_new_process_after_import_keras_blocks(tmp_path):
    model = every_layer()
    assert {type(layer).__name__ for layer in model.layers} >= set(layers.__all__)
    model.save(tmp_path / "model.keras")
    images = random_inputs((2, 8, 8, 3))
    np.save(tmp_path / "images.npy", images)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD,
            *(str(tmp_path / n) for n in ("model.keras", "images.npy", "outputs.npy")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Could not locate class" in result.stdout, result.stdout
    np.testing.assert_allclose(
        np.load(tmp_path / "outputs.npy"),
        keras.ops.convert_to_numpy(model(images, training=False)),
        rtol=1e-6,
        atol=1e-6,
    )
