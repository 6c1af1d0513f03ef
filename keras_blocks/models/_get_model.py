"""Building a reference model by name, with its weights and preprocessing."""

import inspect
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
    # Weights of another number of classes (ImageNet's 1000, a converted
    # file's) load into the model they were made for; every layer but the
    # classifier then passes to the model asked for, whose head starts fresh
    # (timm's `create_model(pretrained=True, num_classes=...)`).
    held = (converted or {}).get("classes", 1000 if origin != "keras" else None)
    classes = options.get("classes", _default(entry, "classes"))
    fresh_head = (
        source_name is not None
        and options.get("include_top", _default(entry, "include_top"))
        and held is not None
        and classes != held
    )
    model = _build(entry, {**options, "classes": held} if fresh_head else options)
    if source_name == "keras":
        _load_own(model, path, name, options, converted)
    elif source_name is not None:
        source = family.weights[source_name]
        if isinstance(source, KerasApplicationsSource):
            load_keras_applications(model, name, path, source)
        else:
            load_pretrained(model, path, source)
    if fresh_head:
        model = _with_new_head(model, _build(entry, options), held)
    if include_preprocessing and mode is not None:
        model = _with_preprocessing(model, mode)
    return model


def _build(entry, options):
    try:
        return entry.builder(**options)
    except TypeError as error:  # a builder of **kwargs (EfficientNet's)
        if "unexpected keyword argument" not in str(error):
            raise
        raise ValueError(f"Invalid argument for {entry.name}: {error}") from None


def _default(entry, option):
    """The builder's default of `option` (EfficientNet's take **kwargs: the
    library's builders all default to a top of 1000 classes)."""
    parameters = inspect.signature(entry.builder).parameters
    if option in parameters:
        return parameters[option].default
    return {"classes": 1000, "include_top": True}[option]


def _load_own(model, path, name, options, converted):
    try:
        model.load_weights(path)
    except ValueError as error:
        held = (
            f" It holds {name} converted from {converted['source']}'s file "
            f"with {converted['classes']} classes at "
            f"{tuple(converted['image_size'])}."
            if converted
            else " A keras.applications file loads as downloaded (its .h5), or "
            "with weights_source='keras_applications'."
        )
        raise ValueError(
            f"The weights in {os.fspath(path)!r} do not fit {name} built with "
            f"{options}.{held} ({str(error).splitlines()[0]})"
        ) from None


def _with_new_head(loaded, model, held):
    """`model` with every weight of `loaded` but its classifier's (the
    layers of `held` units), which stay fresh."""
    for layer in model.layers:
        if not layer.weights:
            continue
        source = loaded.get_layer(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if shapes == [tuple(w.shape) for w in source.weights]:
            layer.set_weights(source.get_weights())
        elif not (isinstance(layer, keras.layers.Dense) and source.units == held):
            raise ValueError(  # only the classifiers depend on the classes
                f"Layer {layer.name!r} of {model.name} differs from the loaded "
                f"model's beyond its classes: {shapes}."
            )
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
    if isinstance(weights, str) and weights.lower() in DOWNLOADS:
        weights = weights.lower()
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
        try:
            path = keras.utils.get_file(
                file, TORCHVISION_URL + file, cache_dir=CACHE_DIR, cache_subdir="models"
            )
        except Exception as error:  # get_file raises Exception for a failed fetch
            raise OSError(
                f"Could not download {TORCHVISION_URL + file} ({error}). Without "
                "internet, download it elsewhere and pass its path as weights=, "
                "or put it in ~/.keras/models (or $KERAS_HOME/models)."
            ) from None
        return source_name, path
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
    owner = _publisher(path.name)
    if owner is not None and owner[0] != entry.name:
        other, source_name = owner
        raise ValueError(
            f"Invalid value for argument `weights`. {path.name} is {source_name}'s "
            f"published file of {other}, not of {entry.name}: build it with "
            f"get_model({other!r}, weights=...). Received: name={entry.name!r}"
        )
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


def _publisher(file_name):
    """(model, source) whose published file is named `file_name`
    (keras.applications' `_notop` files too), or None."""
    stem = file_name.replace("_notop", "")
    for name, entry in _registry.entries().items():
        for source_name, file in entry.weights.items():
            if file.file in (file_name, stem):
                return name, source_name
    return None


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
