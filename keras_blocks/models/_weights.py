"""Pretrained weights of the reference models: torchvision, timm, keras.applications.

Each family module (resnet.py, vgg.py, ...) describes where its published
weights come from in a `WEIGHTS` dict: source name ("torchvision", "timm",
"keras_applications") -> `WeightSource` (a state dict converted on load by
the library's strict `keras_blocks.porting.load_state_dict`) or
`KerasApplicationsSource` (a keras.applications model whose weights are
copied). `keras_blocks.models.get_model(name, weights=...)` loads them:

    model = get_model("resnet50", weights="resnet50-11ad3fa6.pth")
"""

import dataclasses
import os
from collections.abc import Callable

import keras

from keras_blocks._builders import image_shape
from keras_blocks.layers.image_preprocessing import IMAGENET_MEAN, IMAGENET_STDDEV
from keras_blocks.porting import Flattened, load_state_dict


@dataclasses.dataclass(frozen=True)
class WeightSource:
    """How one source lays out a family's weights.

    Attributes:
        mapping: model -> {Keras layer path: source key prefix}; raises
            ValueError for a model built in another layout.
        bn_epsilon: the source's batch normalization epsilon (None: no BN, or
            it depends on the model: `epsilon(model)` decides).
        head: source key prefixes of the ImageNet classifier, ignored when the
            model has no top (`include_top=False`).
        layout: how to build the model in this source's layout (for errors).
        files: MODELS name -> (published file name, top-1, build options).
        ignored: source key prefixes never loaded (auxiliary heads).
        license: the weights' license, for the docs.
        preprocessing: the mode of `keras_blocks.layers.ImagePreprocessing`
            that the weights expect, for all the source's files or per
            MODELS name: `"torch"` (ImageNet's mean and standard deviation
            after scaling to [0, 1], as torchvision's transforms and timm's
            `resnet*`/`efficientnet*` configurations) or `"tf"` (mean and
            standard deviation 0.5: torchvision's EfficientNetV2-L).

    Examples:
        >>> from keras_blocks.models import resnet
        >>> source = resnet.WEIGHTS["torchvision"]
        >>> source.files["resnet50"][0], source.bn_epsilon, source.preprocessing
        ('resnet50-11ad3fa6.pth', 1e-05, 'torch')
    """

    mapping: Callable[[keras.Model], dict]
    bn_epsilon: float | Callable[[keras.Model], float] | None
    head: tuple[str, ...]
    layout: str
    files: dict[str, tuple[str, float, dict]]
    ignored: tuple[str, ...] = ()
    license: str = "BSD-3-Clause (torchvision)"
    preprocessing: str | dict[str, str] = "torch"


def load_pretrained(model, path, source):
    """Loads the `source`'s state dict file at `path` (or a state dict) into
    `model`, converting it strictly; returns the
    `keras_blocks.porting.LoadReport`.

    Examples:
        >>> import numpy as np
        >>> from keras_blocks.models import load_pretrained, resnet
        >>> model = resnet.ResNet(18, input_shape=(32, 32, 3))
        >>> state = {"fc.weight": np.zeros((1000, 512), "float32")}
        >>> load_pretrained(model, state, resnet.WEIGHTS["torchvision"])
        Traceback (most recent call last):
        ...
        ValueError: ...
    """
    has_top = _has_top(model)
    epsilon = source.bn_epsilon
    if callable(epsilon):
        epsilon = epsilon(model)
    try:
        mapping = source.mapping(model)
    except ValueError as error:
        raise ValueError(f"{error} {source.layout}") from None
    return load_state_dict(
        model,
        os.fspath(path) if not isinstance(path, dict) else path,
        mapping,
        ignore=source.ignored + (() if has_top else source.head),
        bn_epsilon=epsilon,
        layout_hint=source.layout,
    )


def flattened(model, prefix, feature_shape, network, size):
    """`Flattened` for a first classifier layer that reads the flattened
    `(channels, height, width)` map of `network` at `size` x `size` inputs; a
    ValueError naming `input_shape` where the model's map has another size."""
    flatten = model.get_layer("flatten")
    data_format = flatten.data_format  # the builder's, as its convolutions'
    channels, height, width = feature_shape
    expected = (height, width, channels)
    if data_format == "channels_first":
        expected = tuple(feature_shape)
    received = tuple(flatten.input.shape[1:])
    if received != expected:
        raise ValueError(
            f"{network} flattens a {expected} feature map ({size}x{size} "
            "inputs, where its adaptive average pooling changes nothing); "
            f"this model flattens {received}: it needs input_shape="
            f"{image_shape(size, data_format)} (the default), or "
            "include_top=False for other sizes. Received: input_shape="
            f"{tuple(model.input_shape[1:])}."
        )
    # keras.layers.Flatten orders the features (h, w, c) in either data format.
    return Flattened(prefix, tuple(feature_shape))


@dataclasses.dataclass(frozen=True)
class KerasApplicationsSource:
    """keras.applications' ImageNet weights for models built in its layout.

    The weights are copied from the keras.applications model, built with
    `weights="imagenet"` (which downloads them once into `~/.keras/models`)
    or with the path of a file of its weights.

    Attributes:
        applications: MODELS name -> the `keras.applications` builder's name
            (`"ResNet50"`).
        files: MODELS name -> (the file keras.applications downloads, its
            top-1, build options).
        preprocessing: the mode of `keras_blocks.layers.ImagePreprocessing`
            that the weights expect (`"caffe"`, `"tf"`), one for all its
            models or per MODELS name; None where the model holds its own
            preprocessing (EfficientNet).
        copy: (model, keras.applications model) -> None, which copies the
            weights; None: `model.set_weights(source.get_weights())` after a
            check that they fit.
        license: the weights' license, for the docs.

    Examples:
        >>> from keras_blocks.models import resnet
        >>> source = resnet.WEIGHTS["keras_applications"]
        >>> source.applications["resnet50v2"], source.preprocessing["resnet50v2"]
        ('ResNet50V2', 'tf')
    """

    applications: dict[str, str]
    files: dict[str, tuple[str, float, dict]]
    preprocessing: str | dict[str, str] | None = None
    copy: Callable | None = None
    license: str = "see keras.applications' documentation"


def preprocessing_mode(source, name):
    """The `ImagePreprocessing` mode that `source`'s weights of `name` expect."""
    if isinstance(source.preprocessing, dict):
        return source.preprocessing[name]
    return source.preprocessing


def normalization(source, name):
    """(mean, std) per RGB channel that `source`'s weights of `name` expect
    after scaling pixels to [0, 1] (a `WeightSource`: `"torch"` or `"tf"`).

    Examples:
        >>> from keras_blocks.models import efficientnet_v2, normalization
        >>> normalization(efficientnet_v2.WEIGHTS["torchvision"], "efficientnet_v2_l")
        ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    """
    mode = preprocessing_mode(source, name)
    if mode == "torch":
        return tuple(IMAGENET_MEAN), tuple(IMAGENET_STDDEV)
    if mode == "tf":  # x / 127.5 - 1 == (x / 255 - 0.5) / 0.5
        return (0.5,) * 3, (0.5,) * 3
    raise ValueError(f"No (mean, std) in [0, 1] for {mode!r} preprocessing.")


def load_keras_applications(model, name, weights, source):
    """Copies the weights of keras.applications' model for `name` (built with
    `weights`: `"imagenet"` or a file path) into `model`."""
    import keras

    application = getattr(keras.applications, source.applications[name])
    top = model.get_layer("predictions") if _has_top(model) else None
    options = dict(
        weights=os.fspath(weights),
        include_top=top is not None,
        input_shape=tuple(model.input_shape[1:]),
    )
    if top is not None:
        options["classes"] = top.units
        options["classifier_activation"] = top.activation
        if top.units != 1000 and weights == "imagenet":
            raise ValueError(
                "Invalid value for argument `classes`. keras.applications' "
                "ImageNet weights have 1000 classes; with other classes, build "
                "with include_top=False. Received: classes="
                f"{top.units}"
            )
    reference = application(**options)
    if source.copy is not None:
        return source.copy(model, reference)
    expected = [tuple(w.shape) for w in model.weights]
    received = [tuple(w.shape) for w in reference.weights]
    if expected != received:
        raise ValueError(
            f"The weights of keras.applications' {reference.name} do not fit "
            f"{model.name!r} ({len(received)} arrays against {len(expected)}): "
            "build the model with layout='keras_applications' and the same "
            "include_top."
        )
    model.set_weights(reference.get_weights())
    return None


def _has_top(model):
    return any(layer.name == "predictions" for layer in model.layers)


# The HDF5 attribute in which examples/convert_weights.py records what a
# converted `.weights.h5` file holds (model, source, classes, image size).
CONVERTED = "keras_blocks_pretrained"


def converted_metadata(path):
    """The record of a `.weights.h5` file converted by
    examples/convert_weights.py (a dict: model, source, classes, image_size,
    ...), or None for another weights file."""
    import json

    import h5py  # Keras' own dependency for .h5 files

    try:
        with h5py.File(path, "r") as file:
            text = file.attrs.get(CONVERTED)
    except OSError as error:
        raise ValueError(
            f"Cannot read {os.fspath(path)!r} as a Keras weights file ({error}). "
            "It may be truncated or corrupt."
        ) from None
    return None if text is None else json.loads(text)
