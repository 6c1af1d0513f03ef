"""An ensemble of classifiers: the average of their softmax outputs."""

from typing import Any

import keras

from keras_blocks import _validation as check


@keras.saving.register_keras_serializable(package="keras_blocks")
class Ensemble(keras.Model):
    """Averages the outputs (softmax probabilities) of several trained models.

    GoogLeNet's ILSVRC 2014 submission averaged seven models (Szegedy et al.
    2015, section 7), AlexNet's five (Krizhevsky et al. 2012, section 6). The
    ensemble is a Keras model: `predict`, `evaluate` (after `compile`),
    `keras_blocks.evaluation.evaluate_with_tta` and `.keras` saving work as
    for one model. Members may share a name (two runs of one architecture).

    Args:
        members: list of Keras models with the same input and output shapes
            (classifiers with a softmax output). A member with several
            outputs (GoogLeNet's auxiliary heads) contributes its first.
        weights: tuple of non-negative floats or None. Each member's weight
            in the average (normalized to sum to 1); None weighs them equally.
        **kwargs: passed to `keras.Model` (`name`).

    Examples:
    >>> import keras, numpy as np
    >>> from keras_blocks.evaluation import Ensemble
    >>> def member(seed):
    ...     keras.utils.set_random_seed(seed)
    ...     return keras.Sequential([
    ...         keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    >>> ensemble = Ensemble([member(0), member(1)])
    >>> x = np.ones((2, 4), "float32")
    >>> probabilities = ensemble.predict(x, verbose=0)
    >>> bool(np.allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5))
    True
    """

    def __init__(
        self,
        members: list,
        weights: tuple[float, ...] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not isinstance(members, (list, tuple)) or not members:
            raise ValueError(
                "Invalid value for argument `members`. Expected a non-empty list "
                f"of Keras models. Received: members={members!r}"
            )
        for member in members:
            if not isinstance(member, keras.Model):
                raise ValueError(
                    "Invalid value for argument `members`. Expected Keras models. "
                    f"Received: an element of type {type(member).__name__}"
                )
        shapes = {_shapes(member) for member in members}
        if len(shapes) > 1:
            raise ValueError(
                "Invalid value for argument `members`. Expected models with the "
                "same input and output shapes. Received: "
                + ", ".join(f"{m.name}: {_shapes(m)}" for m in members)
            )
        if weights is not None:
            if not isinstance(weights, (list, tuple)) or len(weights) != len(members):
                raise ValueError(
                    "Invalid value for argument `weights`. Expected one weight per "
                    f"member ({len(members)}), or None. Received: weights={weights!r}"
                )
            weights = tuple(check.non_negative_float("weights", w) for w in weights)
            if sum(weights) == 0:
                raise ValueError(
                    "Invalid value for argument `weights`. Expected at least one "
                    f"strictly positive weight. Received: weights={weights!r}"
                )
        self.members = list(members)
        self.member_weights = weights
        input_shape = _shapes(members[0])[0]
        if input_shape is not None:
            self.build((None, *input_shape))

    def build(self, input_shape):
        for member in self.members:
            if not member.built:
                member.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        outputs = []
        for member in self.members:
            output = member(inputs, training=training)
            if isinstance(output, (list, tuple)):
                output = output[0]
            outputs.append(keras.ops.cast(output, "float32"))
        if self.member_weights is None:
            return keras.ops.mean(keras.ops.stack(outputs), axis=0)
        total = sum(self.member_weights)
        return sum(
            w / total * output
            for w, output in zip(self.member_weights, outputs, strict=True)
        )

    @property
    def input_shape(self):
        """The members' input shape, with the batch size: `(None, ...)`."""
        shape = _shapes(self.members[0])[0]
        return None if shape is None else (None, *shape)

    @property
    def output_shape(self):
        """The members' (first) output shape, with the batch size."""
        shape = _shapes(self.members[0])[1]
        return None if shape is None else (None, *shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *_shapes(self.members[0])[1])

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "members": [keras.saving.serialize_keras_object(m) for m in self.members],
            "weights": None
            if self.member_weights is None
            else list(self.member_weights),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["members"] = [
            keras.saving.deserialize_keras_object(m) for m in config["members"]
        ]
        if config.get("weights") is not None:
            config["weights"] = tuple(config["weights"])
        return cls(**config)


def _shapes(model):
    """(input shape, first output shape) without the batch size, or Nones."""
    try:
        inputs, outputs = model.input_shape, model.output_shape
    except (AttributeError, ValueError):
        return (None, None)
    if isinstance(outputs, list):  # several outputs: the first
        outputs = outputs[0]
    if inputs is None or outputs is None or isinstance(inputs, list):
        return (None, None)
    return (tuple(inputs[1:]), tuple(outputs[1:]))
