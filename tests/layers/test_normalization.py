import json
import re
import zipfile

import keras
import numpy as np
import pytest

from keras_blocks.layers import Normalization
from tests.layers.layer_checks import (
    ARGUMENT_CHECKS,
    check_layer,
    random_inputs,
    to_numpy,
)

STATISTICS = [np.array([0.5, -1.0, 2.0]), np.array([4.0, 0.25, 1.0]), np.array(0)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs", [{}, {"axis": (1, 3)}, {"axis": None}, {"mean": 1.0, "variance": 4.0}]
)
def test_layer_checks(kwargs, tmp_path):
    check_layer(Normalization, kwargs, (2, 5, 5, 3), tmp_path)


def test_equals_keras_normalization():
    """The reference: Keras' layer given the same statistics."""
    x = random_inputs((2, 4, 4, 3))
    ours = Normalization()
    ours.build(x.shape)
    ours.set_weights(STATISTICS)
    theirs = keras.layers.Normalization(mean=STATISTICS[0], variance=STATISTICS[1])
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(theirs(x)), rtol=1e-6)
    adapted = keras.layers.Normalization()
    adapted.adapt(x)
    ours.set_weights(adapted.get_weights())  # what Keras' layer would ignore
    np.testing.assert_allclose(
        to_numpy(ours(x)), to_numpy(adapted(x)), rtol=1e-5, atol=1e-6
    )


def test_file_saved_under_the_old_module_loads(tmp_path):
    """Files written when the class lived in `layers/_normalization.py` name
    that module; the registered name, unchanged, loads them in safe mode."""
    inputs = keras.Input((4, 4, 3))
    layer = Normalization()
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights(STATISTICS)
    new, old = tmp_path / "new.keras", tmp_path / "old.keras"
    model.save(new)
    with zipfile.ZipFile(new) as source, zipfile.ZipFile(old, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                (entry,) = [
                    layer
                    for layer in config["config"]["layers"]
                    if layer["registered_name"] == "keras_blocks>Normalization"
                ]
                assert entry["module"] == "keras_blocks.layers.normalization"
                entry["module"] = "keras_blocks.layers._normalization"
                data = json.dumps(config)
            target.writestr(item, data)
    loaded = keras.saving.load_model(old, safe_mode=True)
    assert type(loaded.layers[-1]) is Normalization
    x = random_inputs((2, 4, 4, 3))
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-6)


@ARGUMENT_CHECKS
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"axis": "channels"},
            "Invalid value for argument `axis`. Expected an integer, a sequence "
            "of integers or None. Received: axis='channels'",
        ),
        (
            {"axis": (1, 2.0)},
            "Invalid value for argument `axis`. Expected an integer, a sequence "
            "of integers or None. Received: axis=(1, 2.0)",
        ),
        (
            {"invert": 1},
            "Invalid value for argument `invert`. Expected a boolean. "
            "Received: invert=1",
        ),
    ],
)
def test_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Normalization(**kwargs)
