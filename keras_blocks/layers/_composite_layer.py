"""The base of every layer made of sublayers: what a user changes inside it
after construction survives `get_config` and a `.keras` file.

A block's sublayers are not serialized: `from_config` creates them anew from
the block's arguments, and a `.keras` file stores only their variables.
Keras (3.15) stores one `trainable` flag per serialized layer, so a frozen
sublayer (`block.bn.trainable = False`, or every layer of a frozen backbone)
came back trainable, and a batch normalization's `momentum` or `epsilon` set
after construction came back as the block's arguments give it. Keras' own
composite layers lose them too (a frozen `MultiHeadAttention`, or one with a
frozen projection, reloads with all its weights trainable).

`CompositeLayer` keeps them:

- `get_config` adds `"sublayer_state"` where a nested layer differs from what
  construction gives it: `{"conv1/bn": {"trainable": False, "momentum": 0.5}}`,
  paths made of the layers' names. Absent where nothing was changed, so the
  configs of untouched layers are as before.
- `from_config` applies it to the sublayers `__init__` created and to those
  `build` creates later, as each is assigned (`__setattr__`).
- A sublayer assigned to a frozen layer is frozen (Keras' `trainable` setter
  freezes the sublayers that exist when it is called; a layer constructed with
  `trainable=False`, as `from_config` constructs a frozen one, or built after
  being frozen, creates its sublayers afterwards).

What is kept, per nested layer: `trainable`; a `BatchNormalization`'s
`momentum` and `epsilon`; a `DropPath`'s `rate` (a drop-path schedule, or
stochastic depth turned off for fine-tuning). Nothing else a sublayer holds
is meant to change after construction (its sizes and initializers are the
block's arguments). A new value takes effect in functions traced after it
(a compiled `fit` traced before keeps the old one), as for Keras' own layers.
"""

import keras

from keras_blocks import _compat
from keras_blocks import _validation as check
from keras_blocks.layers.drop_path import DropPath

STATE_KEY = "sublayer_state"
_PENDING = "_pending_sublayer_state"

# (class of the nested layer, its attribute, the attribute of the layer that
# creates it whose value it gets at construction).
_TUNABLE = (
    (keras.layers.BatchNormalization, "momentum", "bn_momentum"),
    (keras.layers.BatchNormalization, "epsilon", "bn_epsilon"),
    (DropPath, "rate", "drop_path_rate"),
)
_ATTRIBUTES = {"trainable"} | {attribute for _, attribute, _ in _TUNABLE}


def _children(layer):
    """{name: sublayer} of `layer`'s own sublayers."""
    return {sub.name: sub for sub in _compat.nested_layers(layer, recursive=False)}


class CompositeLayer(keras.layers.Layer):
    """A `keras.layers.Layer` whose sublayers keep what a user changes in
    them through `get_config`, `from_config` and `.keras` files (see the
    module's docstring). Not public."""

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if isinstance(value, keras.layers.Layer) and value is not self:
            self._adopt(value)

    def _adopt(self, sublayer):
        if not _compat.layer_trainable(self):
            sublayer.trainable = False
        pending = self.__dict__.get(_PENDING)
        if not pending:
            return
        name = sublayer.name
        taken = {}
        for path in [p for p in pending if p == name or p.startswith(name + "/")]:
            taken[path[len(name) + 1 :]] = pending.pop(path)
        _apply(sublayer, taken)

    def get_config(self):
        config = super().get_config()
        state = sublayer_state(self)
        if state:
            config[STATE_KEY] = state
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        state = _checked(config.pop(STATE_KEY, {}))
        layer = super().from_config(config)
        _apply(layer, state)
        return layer


def sublayer_state(layer):
    """{path: {attribute: value}} of `layer`'s nested layers, where they
    differ from what construction gives them: a flag other than the parent's,
    a tuned attribute other than the parent's argument."""
    state = {}

    def visit(parent, prefix):
        for name, sub in _children(parent).items():
            changed = {}
            if sub.trainable != parent.trainable:
                changed["trainable"] = sub.trainable
            for kind, attribute, source in _TUNABLE:
                if isinstance(sub, kind):
                    value = getattr(sub, attribute)
                    if value != getattr(parent, source, None):
                        changed[attribute] = value
            if changed:
                state[prefix + name] = changed
            visit(sub, prefix + name + "/")
        # Not applied yet: sublayers that `build` has not created.
        for path, attributes in parent.__dict__.get(_PENDING, {}).items():
            state[prefix + path] = dict(attributes)

    visit(layer, "")
    return state


def _checked(state):
    if not isinstance(state, dict) or not all(
        isinstance(path, str)
        and isinstance(attributes, dict)
        and set(attributes) <= _ATTRIBUTES
        for path, attributes in state.items()
    ):
        raise ValueError(
            f"Invalid value for argument `{STATE_KEY}`. Expected a dict of "
            f"sublayer paths to dicts with keys among {sorted(_ATTRIBUTES)}. "
            f"Received: {STATE_KEY}={state!r}"
        )
    for attributes in state.values():
        if "trainable" in attributes:
            check.boolean("trainable", attributes["trainable"])
    return state


def _apply(root, state):
    """Sets each `{path: {attribute: value}}` of `state` on the layer at
    `path` below `root` ("" for `root`), parents first, so that a sublayer's
    own flag follows its parent's. A path whose layer does not exist yet waits
    in the deepest existing composite layer until it is assigned there."""
    for path, attributes in sorted(state.items(), key=lambda item: _depth(item[0])):
        node, parts = root, path.split("/") if path else []
        while parts and parts[0] in _children(node):
            node, parts = _children(node)[parts[0]], parts[1:]
        if parts:
            if isinstance(node, CompositeLayer):
                pending = node.__dict__.get(_PENDING)
                if pending is None:
                    pending = {}
                    # Not Keras-tracked: plain Python state, in no checkpoint.
                    object.__setattr__(node, _PENDING, pending)
                pending["/".join(parts)] = attributes
            continue
        for attribute, value in attributes.items():
            setattr(node, attribute, value)


def _depth(path):
    return path.count("/") if path else -1
