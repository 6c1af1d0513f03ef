"""Building a reference model by name, with its weights and preprocessing."""

import os
from pathlib import Path
from typing import Any

import keras

from keras_blocks.layers.image_preprocessing import ImagePreprocessing
from keras_blocks.models import _registry
from keras_blocks.models._weights import (
    KerasApplicationsSource,
    converted_metadata,
    load_keras_applications,
    load_pretrained,
    preprocessing_mode,
)

TORCHVISION_URL = "https://download.pytorch.org/models/"
STATE_DICT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
# Where downloads are kept: None, Keras' (`~/.keras`, or $KERAS_HOME), in
# its "models" folder, beside keras.applications' weights.
CACHE_DIR = None
# weights= names that download: the source whose files they fetch.
DOWNLOADS = {"imagenet": "keras_applications", "torchvision": "torchvision"}


def get_model(
    name: str,
    *,
    weights: str | os.PathLike | None = None,
    weights_source: str | None = None,
    include_preprocessing: bool = False,
    **options: Any,
) -> keras.Model:
    """Builds the reference model `name`, optionally with weights and with
    the preprocessing its weights expect inside it.

    Args:
        name: str. One of `list_models()` (`"resnet50"`).
        weights: str, path or None. None: fresh weights. A file path: a
            `.weights.h5` file of this model (`model.save_weights`, or
            examples/convert_weights.py), a torchvision or timm state dict
            (`.pth`, `.bin` or `.safetensors`, converted on load, strictly:
            every tensor of the file finds its place, or a ValueError says
            which did not), or a keras.applications weights file (`.h5`).
            `"imagenet"`: keras.applications' ImageNet weights for the models
            that have a keras.applications layout (downloaded once into
            `~/.keras/models`). `"torchvision"`: torchvision's file, downloaded
            once into the same folder (where torchvision publishes one). The
            model is built in the layout the weights need (`layout=`).
        weights_source: str or None. Which of the model's sources
            (`model_entry(name).weights`) a file comes from, where its name
            does not tell: `"torchvision"`, `"timm"`, `"keras_applications"`.
        include_preprocessing: bool. Whether the model takes RGB images with
            pixels in [0, 255] and normalizes them itself as its weights (or
            its layout's weights) expect: a
            `keras_blocks.layers.ImagePreprocessing` first layer (torchvision
            and timm: ImageNet's mean and standard deviation; keras.applications'
            ResNet: "caffe", its v2: "tf"; the CIFAR models: [0, 1]), or
            EfficientNet's own `Rescaling` and `Normalization`.
        **options: the builder's options: `input_shape`, `include_top`,
            `classes`, `pooling`, `classifier_activation`, `layout`, ...

    Returns:
        A `keras.Model`.

    Raises:
        ValueError: on an unknown name, an option the builder lacks, weights
            of another model, layout or source, or weights that do not fit.
        FileNotFoundError: when the weights file does not exist.

    Examples:
        >>> from keras_blocks.models import get_model
        >>> model = get_model("cifar_resnet20", classes=10)
        >>> model.count_params()
        271098
        >>> raw = get_model("resnet18", input_shape=(64, 64, 3),
        ...                 include_preprocessing=True)
        >>> raw.layers[1].name, raw.layers[1].mode
        ('preprocessing', 'torch')
    """
    entry = _registry.model_entry(name)
    _check_options(entry, options)
    source_name, path = _weights_source(entry, weights, weights_source)
    family = _registry.families()[entry.family]
    converted = _converted(entry, path) if source_name == "keras" else None
    # Whose weights these are: a converted file's record says.
    origin = converted["source"] if converted else source_name
    if origin not in (None, "keras"):
        required = entry.weights[origin].options
        for key, value in required.items():
            if key in options and options[key] != value:
                raise ValueError(
                    f"Invalid value for argument `{key}`. {origin}'s "
                    f"weights of {name} need {key}={value!r}. Received: "
                    f"{key}={options[key]!r}"
                )
        options = {**required, **options}
    if not isinstance(include_preprocessing, bool):
        raise ValueError(
            "Invalid value for argument `include_preprocessing`. Expected a "
            f"boolean. Received: include_preprocessing={include_preprocessing!r}"
        )
    # The builder's own preprocessing where it has one (EfficientNet's, which
    # follows its layout), else what the weights (or the layout's) expect. A
    # converted file holds the named model's weights, without the builder's
    # preprocessing (and its normalization's weights): it gets the layer.
    mode = family.preprocessing({**_registry.bound_options(entry), **options})
    if (mode is not None or converted) and origin not in (None, "keras"):
        mode = preprocessing_mode(family.weights[origin], name)
    if mode is None:  # the builder's own (EfficientNet's, as keras.applications)
        options["include_preprocessing"] = include_preprocessing
    try:
        model = entry.builder(**options)
    except TypeError as error:  # a builder of **kwargs (EfficientNet's)
        if "unexpected keyword argument" not in str(error):
            raise
        raise ValueError(f"Invalid argument for {name}: {error}") from None

    if source_name == "keras":
        try:
            model.load_weights(path)
        except ValueError as error:
            held = (
                f" It holds {name} converted from {converted['source']}'s file "
                f"with {converted['classes']} classes at "
                f"{tuple(converted['image_size'])}: build with those."
                if converted
                else ""
            )
            raise ValueError(
                f"The weights in {os.fspath(path)!r} do not fit {name} built "
                f"with {options}.{held} ({error})"
            ) from None
    elif source_name is not None:
        source = family.weights[source_name]
        if isinstance(source, KerasApplicationsSource):
            load_keras_applications(model, name, path, source)
        else:
            load_pretrained(model, path, source)
    if include_preprocessing and mode is not None:
        model = _with_preprocessing(model, mode)
    return model


def _converted(entry, path):
    """The record of a file of examples/convert_weights.py (None for another
    `.weights.h5` file), checked to hold `entry`'s model."""
    record = converted_metadata(path)
    if record is not None and record.get("model") != entry.name:
        raise ValueError(
            f"Invalid value for argument `weights`. {os.fspath(path)!r} holds "
            f"the weights of {record.get('model')}, converted from "
            f"{record.get('source')}'s file, not of {entry.name}. Received: "
            f"name={entry.name!r}"
        )
    return record


def _check_options(entry, options):
    parameters = entry.parameters
    if parameters is None:  # **kwargs: the builder checks them
        return
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        raise ValueError(
            f"Invalid argument `{unknown[0]}` for {entry.name}: its builder "
            f"takes {', '.join(p for p in parameters)}. Received: "
            f"{unknown[0]}={options[unknown[0]]!r}"
        )


def _weights_source(entry, weights, weights_source):
    """(source name, path): `"keras"` for a file of this model's own layout;
    None, None without weights."""
    if weights is None:
        if weights_source is not None:
            raise ValueError(
                "Invalid value for argument `weights_source`. It tells where a "
                "`weights` file comes from; no weights were given. Received: "
                f"weights_source={weights_source!r}"
            )
        return None, None
    if weights_source is not None and weights_source not in entry.weights:
        raise ValueError(
            "Invalid value for argument `weights_source`. Expected one of "
            f"{tuple(entry.weights)} (the sources of {entry.name}'s weights). "
            f"Received: weights_source={weights_source!r}"
        )
    if isinstance(weights, str) and weights in DOWNLOADS:
        source_name = DOWNLOADS[weights]
        if source_name not in entry.weights:
            raise ValueError(
                f"Invalid value for argument `weights`. {entry.name} has no "
                f"{source_name} weights to download; {_available(entry)} "
                f"Received: weights={weights!r}"
            )
        if source_name == "keras_applications":
            return source_name, "imagenet"  # keras.applications downloads
        file = entry.weights[source_name].file
        return source_name, keras.utils.get_file(
            file, TORCHVISION_URL + file, cache_dir=CACHE_DIR, cache_subdir="models"
        )
    if not isinstance(weights, str | os.PathLike):
        raise ValueError(
            "Invalid value for argument `weights`. Expected None, 'imagenet', "
            "'torchvision' or the path of a weights file. Received: "
            f"weights={weights!r}"
        )
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"No weights file at {os.fspath(weights)!r}. {_available(entry)}"
        )
    suffix = path.name.lower()
    if weights_source is not None:
        return weights_source, path
    if suffix.endswith(".weights.h5"):
        return "keras", path
    if suffix.endswith(".h5") and "keras_applications" in entry.weights:
        return "keras_applications", path
    if suffix.endswith(STATE_DICT_SUFFIXES):
        sources = [s for s, file in entry.weights.items() if s != "keras_applications"]
        named = [s for s in sources if entry.weights[s].file == path.name]
        if named or len(sources) == 1:
            return (named or sources)[0], path
        if sources:
            raise ValueError(
                "Invalid value for argument `weights_source`. The file name "
                f"{path.name!r} does not tell which of {tuple(sources)} it "
                f"comes from: pass weights_source=. Received: weights_source=None"
            )
    raise ValueError(
        f"Invalid value for argument `weights`. {entry.name} loads "
        f"{_kinds(entry)}. Received: weights={os.fspath(weights)!r}"
    )


def _kinds(entry):
    kinds = ["its own .weights.h5 files"]
    if any(s != "keras_applications" for s in entry.weights):
        kinds.append("torchvision or timm state dicts (.pth, .bin, .safetensors)")
    if "keras_applications" in entry.weights:
        kinds.append("keras.applications' .h5 files")
    return ", ".join(kinds)


def _available(entry):
    if not entry.weights:
        return f"{entry.name} has no published weights."
    files = ", ".join(f"{s}: {w.file}" for s, w in entry.weights.items())
    return f"{entry.name}'s published weights: {files}."


def _with_preprocessing(model, mode):
    """`model` with an `ImagePreprocessing(mode)` layer between its input and
    its first layers, in one flat graph (the same layers and weights)."""
    preprocessing = ImagePreprocessing(mode, name="preprocessing")
    inputs = keras.Input(batch_shape=model.inputs[0].shape, name="images")
    preprocessed = preprocessing(inputs)

    def call(layer, *args, **kwargs):
        args = [preprocessed if arg is inputs else arg for arg in args]
        return layer(*args, **kwargs)

    return keras.models.clone_model(
        model,
        input_tensors=inputs,
        clone_function=lambda layer: layer,
        call_function=call,
    )
