"""What a user freezes or retunes inside a layer after building it, and whether
a `.keras` file keeps it: each nested layer's `trainable` flag, the batch
normalizations' `momentum` and `epsilon`, and the drop-path rates.

Run as a script (`python frozen_checks.py FILE...`) it loads each file in a
fresh process that imports nothing but `keras_blocks`, and prints the
settings of each as JSON.
"""

import json
import sys

import keras
import numpy as np


def sublayers(layer, prefix=""):
    """(path, layer) of every layer nested in `layer`, parents first; a path
    joins the layers' names with "/". Keras lists a layer's own sublayers
    with `_flatten_layers` only (a `Model` also has `.layers`)."""
    for sub in layer._flatten_layers(include_self=False, recursive=False):
        path = prefix + sub.name
        yield path, sub
        yield from sublayers(sub, path + "/")


def _tuned(layer):
    """The attributes of a nested layer a user may change after building it."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return {"momentum": layer.momentum, "epsilon": layer.epsilon}
    if type(layer).__name__ == "DropPath":
        return {"rate": layer.rate}
    return {}


def settings_of(model):
    """Each nested layer's flag and tuned attributes, and the paths of the
    model's trainable weights (what an optimizer updates)."""
    return {
        "layers": {
            path: {"trainable": layer.trainable, **_tuned(layer)}
            for path, layer in sublayers(model)
        },
        "trainable_weights": sorted(w.path for w in model.trainable_weights),
    }


def change_settings(layer, draw, strategies):
    """Freezes or unfreezes `layer` and some of its nested layers (parents
    first, so a sublayer can differ from its frozen parent) and changes some
    batch normalizations' momentum and epsilon and drop-path rates, each
    drawn with `draw` from `strategies` (a hypothesis module)."""
    st = strategies
    flags = st.sampled_from([None, False, True])
    for _, part in [("", layer), *sublayers(layer)]:
        flag = draw(flags)
        if flag is not None:
            part.trainable = flag
        for attribute, value in _tuned(part).items():
            if attribute == "momentum":
                new = draw(st.one_of(st.none(), st.floats(0.0, 0.99)))
            elif attribute == "epsilon":
                new = draw(st.one_of(st.none(), st.floats(1e-6, 0.1)))
            else:
                new = draw(st.one_of(st.none(), st.floats(0.0, 0.9)))
            if new is not None and new != value:
                setattr(part, attribute, new)


def change_every_setting(layer):
    """`change_settings` without drawing: `layer` frozen but its first
    sublayer, every batch normalization's momentum and epsilon and every
    drop-path rate changed."""
    layer.trainable = False
    parts = [part for _, part in sublayers(layer)]
    if parts:
        parts[0].trainable = True
    changed = {"momentum": 0.5, "epsilon": 0.01, "rate": 0.3}
    for part in parts:
        for attribute in _tuned(part):
            setattr(part, attribute, changed[attribute])


def frozen_leaves(model):
    """The layers without sublayers whose weights no training may change."""
    return [
        layer
        for _, layer in sublayers(model)
        if not layer.trainable and not list(sublayers(layer))
    ]


def assert_training_leaves_frozen_weights(model, x, y):
    """One SGD step on `model` changes no weight of a frozen layer (moving
    statistics of a frozen batch normalization included)."""
    frozen = [w for layer in frozen_leaves(model) for w in layer.weights]
    before = [keras.ops.convert_to_numpy(w) for w in frozen]
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.train_on_batch(x, y)
    for weight, value in zip(frozen, before, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(weight), value, err_msg=weight.path
        )


if __name__ == "__main__":
    import keras_blocks  # noqa: F401 (registers the layers the files name)

    print(
        json.dumps(
            {
                path: settings_of(keras.saving.load_model(path, safe_mode=True))
                for path in sys.argv[1:]
            }
        )
    )
