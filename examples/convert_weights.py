"""Convert torchvision's or timm's ImageNet weights into a Keras weights file.

    python examples/convert_weights.py --list     # the models and their files
    python examples/convert_weights.py --model resnet50 --source torchvision \\
        --input resnet50-11ad3fa6.pth --output resnet50.weights.h5

The PyTorch file (`.pth`, or `.safetensors`, which needs no PyTorch) is the one
the source publishes: `--list` names it for each model, and torchvision
downloads it to `~/.cache/torch/hub/checkpoints/`. The model is built as the
source laid its network out (the build options of the family's `WEIGHTS`
files table), the file is loaded with the library's strict
`keras_blocks.porting.load_state_dict` (every weight filled, every key used,
nothing changed on a mismatch), and the model's weights are written with
`model.save_weights`. The output is a plain Keras `.weights.h5` file, the
classifier included: it loads on TensorFlow, JAX and PyTorch alike.

The file also records (as HDF5 attributes, which Keras ignores) the model's
name, the source, the number of classes, the input size it was converted at,
the data format and the input preprocessing the weights expect, so that

    python -m examples.train --model resnet50 --weights resnet50.weights.h5
    python -m examples.transfer_learning --model resnet50 \\
        --weights resnet50.weights.h5 --data-dir path/to/images

can fine-tune from it: they load it with this module's `load_converted`,
which gives a model of the same name every layer of the file but a classifier
of another number of classes, at any input size.

Preprocessing: torchvision's and timm's ImageNet models expect RGB images in
[0, 1], then normalized per channel with mean (0.485, 0.456, 0.406) and
standard deviation (0.229, 0.224, 0.225) (`preprocessing(source, name)`); the
converted weights expect the same.

A bad input is refused with exit status 2 and nothing written: an unknown
model or source (with the nearest names), an output that exists (unless
`--overwrite`) or does not end in `.weights.h5`, and a PyTorch file of another
architecture, truncated or corrupt (the loader's message). The file is written
under a temporary name and renamed at the end.
"""

import argparse
import difflib
import json
import math
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python examples/convert_weights.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples._cli import HelpFormatter

SUFFIX = ".weights.h5"
METADATA = "keras_blocks_pretrained"  # the HDF5 attribute of the converted file
FORMAT = 1
# What torchvision's and timm's ImageNet models expect after scaling to [0, 1].
CLASSIFIER = "predictions"  # the classifier layer of every reference model


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--model", metavar="NAME", help="a model name (see --list)")
    parser.add_argument(
        "--source", help="torchvision or timm (default: the model's only source)"
    )
    parser.add_argument("--input", help="the source's .pth or .safetensors file")
    parser.add_argument("--output", help=f"the Keras weights file (*{SUFFIX})")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output"
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the models with published weights, their files and exit",
    )
    args = parser.parse_args(argv)
    if not args.list:
        missing = [
            f"--{k}" for k in ("model", "input", "output") if not getattr(args, k)
        ]
        if missing:
            parser.error(f"the following arguments are required: {', '.join(missing)}")
    return args


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from keras_blocks.models import (
    WeightSource,
    families,
    load_pretrained,
    model_entry,
    normalization,
)
from keras_blocks.models import (
    list_models as registered_models,
)
from keras_blocks.porting import weight_layers


class ConversionError(ValueError):
    """A user error: the message says what to do."""


def sources(name):
    """{source name: WeightSource} of the state dicts (torchvision's, timm's)
    published for model `name`; keras.applications' load by `get_model`."""
    family_sources = families()[model_entry(name).family].weights
    return {
        key: value
        for key, value in family_sources.items()
        if isinstance(value, WeightSource) and name in value.files
    }


def models_with_weights():
    """{model name: [source names]} for every model with published weights."""
    found = {name: list(sources(name)) for name in registered_models()}
    return {name: names for name, names in found.items() if names}


def preprocessing(source, name):
    """(mean, std) per RGB channel that `source`'s weights of model `name`
    expect after scaling the images to [0, 1]: ImageNet's, unless the source
    says otherwise (`WeightSource.preprocessing`)."""
    return normalization(source, name)


def build_options(name, source_name):
    """The builder's options that lay the model out as the source does."""
    return dict(sources(name)[source_name].files[name][2])


def _nearest(word, choices):
    close = difflib.get_close_matches(word, list(choices), n=3)
    if not close:
        return ""
    *first, last = close
    return f" Did you mean {', '.join(first) + ' or ' if first else ''}{last}?"


def check_model_and_source(name, source_name):
    """The model's WeightSource; a ConversionError names what exists."""
    available = models_with_weights()
    if name not in registered_models():
        raise ConversionError(
            f"Unknown model {name!r}.{_nearest(name, available)} --list "
            f"shows the {len(available)} models with published weights and "
            "their files."
        )
    if name not in available:
        raise ConversionError(
            f"No published weights for {name} (no source lists it)."
            f"{_nearest(name, available)} --list shows the {len(available)} "
            "models with published weights and their files."
        )
    model_sources = sources(name)
    if source_name is None:
        if len(model_sources) == 1:
            return next(iter(model_sources.items()))
        raise ConversionError(
            f"{name} has weights from {', '.join(model_sources)}: pass --source."
        )
    if source_name not in model_sources:
        raise ConversionError(
            f"No {source_name} weights for {name}."
            f"{_nearest(source_name, model_sources)} Its sources: "
            f"{', '.join(model_sources)}."
        )
    return source_name, model_sources[source_name]


def file_model(file_name):
    """The model a state dict file's name says it holds (a published file's
    name, or a name starting with a model's, as `resnet34.pth`), or None."""
    for name, names in models_with_weights().items():
        for source_name in names:
            if sources(name)[source_name].files[name][0] == file_name:
                return name
    starts = [
        name
        for name in registered_models()
        if file_name.startswith(name)
        and not file_name[len(name) : len(name) + 1].isalnum()
    ]
    return max(starts, key=len, default=None)


def _another_model(input_path, name, source):
    """The line added to a key mismatch: which model the file may hold."""
    said = file_model(input_path.name)
    example = f"e.g. {source.files[name][0]} is {name}"
    if said is not None and said != name:
        return (
            f"The file may hold another model: its name says {said} (pass "
            f"--model {said}); --list names the published files ({example})."
        )
    return (
        f"The file may hold another model than {name}: --list names the "
        f"published files ({example})."
    )


def no_weights_hint(name):
    """The end of 'pass --model X': convert `name`'s weights, if published."""
    if name in models_with_weights():
        return f", or convert {name}'s weights"
    return (
        f"; {name} has no published weights (examples/convert_weights.py --list "
        "names the models that have)"
    )


def check_output(output, overwrite):
    output = Path(output)
    if not output.name.endswith(SUFFIX) or output.name == SUFFIX:
        raise ConversionError(
            f"The output must be a Keras weights file ending in {SUFFIX} (what "
            f"model.save_weights writes). Received: {output}"
        )
    if output.is_dir():
        raise ConversionError(f"{output} is a directory.")
    if output.exists() and not overwrite:
        raise ConversionError(f"{output} exists: pass --overwrite to replace it.")
    if not output.parent.is_dir():
        raise ConversionError(
            f"The output's folder {output.parent} does not exist: create it first."
        )
    return output


def spatial_size(model):
    shape = model.input_shape
    return list(
        shape[1:3]
        if keras.config.image_data_format() == "channels_last"
        else shape[2:4]
    )


def convert(name, source_name, input_path, output, overwrite=False):
    """Converts `input_path` (the source's state dict file) for model `name`
    into the Keras weights file `output`. Returns (LoadReport, seconds by
    step). Raises ConversionError (or the loader's ValueError, or
    FileNotFoundError); nothing is written then."""
    source_name, source = check_model_and_source(name, source_name)
    output = check_output(output, overwrite)
    input_path = Path(input_path)
    if not input_path.is_file():
        raise ConversionError(f"No such input file: {input_path}")
    seconds = {}
    start = time.perf_counter()
    model = model_entry(name).builder(**build_options(name, source_name))
    seconds["build"] = time.perf_counter() - start
    start = time.perf_counter()
    try:
        report = load_pretrained(model, input_path, source)
    except ValueError as error:
        message = str(error)
        if "missing keys" not in message and "unexpected keys" not in message:
            raise
        # The model is built in the source's layout here: the library's hint
        # on how to build it is for Python users.
        message = message.removesuffix(f" {source.layout}")
        raise ConversionError(
            f"{message}\n{_another_model(input_path, name, source)}"
        ) from None
    seconds["load"] = time.perf_counter() - start
    mean, std = preprocessing(source, name)
    metadata = {
        "format": FORMAT,
        "model": name,
        "source": source_name,
        "input": input_path.name,
        "classes": int(model.get_layer(CLASSIFIER).units),
        "image_size": spatial_size(model),
        "data_format": keras.config.image_data_format(),
        "mean": list(mean),
        "std": list(std),
        "keras_backend": keras.config.backend(),
    }
    # Keras wants the suffix; the dot hides a partial file from `ls`.
    partial = output.with_name(f".{output.name[: -len(SUFFIX)]}.{os.getpid()}{SUFFIX}")
    start = time.perf_counter()
    try:
        model.save_weights(partial)
        import h5py  # Keras' own dependency for .h5 files

        with h5py.File(partial, "r+") as file:
            file.attrs[METADATA] = json.dumps(metadata)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    seconds["save"] = time.perf_counter() - start
    return report, seconds


def read_metadata(path):
    """The record `convert` wrote into a converted weights file."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"No such weights file: {path}")
    if not path.name.endswith(SUFFIX):
        raise ConversionError(
            f"{path} is not a file of examples/convert_weights.py ({SUFFIX}). "
            "Convert a published PyTorch file first: python "
            "examples/convert_weights.py --model NAME --input FILE --output "
            f"NAME{SUFFIX}"
        )
    import h5py

    try:
        with h5py.File(path, "r") as file:
            text = file.attrs.get(METADATA)
    except OSError as error:
        raise ConversionError(
            f"Cannot read {path} as a Keras weights file ({error}). It may be "
            "truncated or corrupt: convert it again."
        ) from None
    if text is None:
        raise ConversionError(
            f"{path} was not written by examples/convert_weights.py (it does "
            "not say which model and source its weights are for). Convert the "
            "published PyTorch file with it."
        )
    return json.loads(text)


def source_model(metadata):
    """The model the file was converted from: its classes, input size and the
    source's layout."""
    name = metadata["model"]
    builder = model_entry(name).builder
    height, width = metadata["image_size"]
    shape = (height, width, 3)
    if keras.config.image_data_format() == "channels_first":
        shape = (3, height, width)
    return builder(
        input_shape=shape,
        classes=metadata["classes"],
        **build_options(name, metadata["source"]),
    )


def loaded_values(model, loaded):
    """How many values the layers `loaded` (paths, from `load_converted`) of
    `model` hold."""
    return sum(
        math.prod(w.shape)
        for path, layer in weight_layers(model).items()
        if path in loaded
        for w in layer.weights
    )


def load_converted(model, path, name):
    """Loads the converted weights file `path` into `model`, a model `name`
    built with the source's build options (`build_options`), any input size
    and any head.

    The file's own model is built (its classes, its input size), loaded with
    `load_weights`, and every layer with weights of `model` gets the weights
    of the layer at the same path: the classifier is left as it was when its
    number of classes differs or `model` has none (`include_top=False`).
    Convolutional weights do not depend on the input size; the dense layers
    after a flatten (VGG's and AlexNet's `fc1`) do, and such a model takes
    them only at the size they were converted at.

    Returns:
        (metadata, loaded layer paths, layer paths left as they were).

    Raises:
        ConversionError: with what to do, and `model` unchanged.
    """
    metadata = read_metadata(path)
    if metadata.get("model") != name:
        raise ConversionError(
            f"{path} holds weights of {metadata.get('model')}, not {name}: pass "
            f"--model {metadata.get('model')}{no_weights_hint(name)}."
        )
    flattens = any(isinstance(layer, keras.layers.Flatten) for layer in model.layers)
    data_format = keras.config.image_data_format()
    if flattens and metadata["data_format"] != data_format:
        raise ConversionError(
            f"{path} was converted under {metadata['data_format']}, and {name} "
            f"flattens its feature map, whose order depends on it: convert "
            f"again under {data_format} (KERAS_IMAGE_DATA_FORMAT or keras.json)."
        )
    height, width = metadata["image_size"]
    flatten_hint = (
        f" {name} flattens its last feature map into dense layers, whose "
        f"weights depend on the input size: the file's fit {height}x{width} "
        f"images only (--image-size {height}), or leave them out "
        "(include_top=False, as examples/transfer_learning.py does)."
    )
    has_dense = any(
        isinstance(leaf, keras.layers.Dense)
        for leaf in weight_layers(model).values()
        if leaf.name != CLASSIFIER
    )
    if flattens and has_dense and spatial_size(model) != [height, width]:
        size = "x".join(str(side) for side in spatial_size(model))
        raise ConversionError(f"{path} does not fit {name} at {size}.{flatten_hint}")
    full = source_model(metadata)
    try:
        full.load_weights(path)
    except (ValueError, OSError) as error:
        raise ConversionError(
            f"Cannot load {path} into {name} ({error}). It may be truncated or "
            "corrupt: convert it again."
        ) from None
    theirs, ours = weight_layers(full), weight_layers(model)
    loaded, kept, mismatched = [], [], []
    assignments = []
    for layer_path, layer in ours.items():
        other = theirs.get(layer_path)
        shapes = [tuple(w.shape) for w in layer.weights]
        if other is not None and shapes == [tuple(w.shape) for w in other.weights]:
            assignments += list(zip(layer.weights, other.weights, strict=True))
            loaded.append(layer_path)
        elif layer_path == CLASSIFIER:
            kept.append(layer_path)  # another number of classes
        else:
            mismatched.append(layer_path)
    if mismatched:
        hint = flatten_hint if flattens else ""
        raise ConversionError(
            f"{path} does not fit this {name}: the layers "
            f"{', '.join(mismatched)} have other shapes or are missing in the "
            f"file's model ({metadata['classes']} classes, {height}x{width}).{hint}"
        )
    for variable, value in assignments:
        variable.assign(value)
    return metadata, loaded, kept


def list_models():
    for name, names in models_with_weights().items():
        for source_name in names:
            file, top1, _ = sources(name)[source_name].files[name]
            accuracy = f"top-1 {top1}%" if top1 is not None else "top-1: see its card"
            print(f"{name:22} {source_name:12} {file} ({accuracy})")


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        list_models()
        return None
    try:
        report, seconds = convert(
            args.model, args.source, args.input, args.output, args.overwrite
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"convert_weights.py: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    metadata = read_metadata(args.output)
    height, width = metadata["image_size"]
    print(
        f"{args.model} from {metadata['source']}'s {metadata['input']}, built at "
        f"{height}x{width} with {metadata['classes']} classes:"
    )
    print(report.summary())
    print(
        f"Wrote {args.output} in {sum(seconds.values()):.1f} s (build "
        f"{seconds['build']:.1f} s, load {seconds['load']:.1f} s, save "
        f"{seconds['save']:.1f} s). Inputs: RGB in [0, 1], then mean "
        f"{tuple(metadata['mean'])}, std {tuple(metadata['std'])}."
    )
    return report


if __name__ == "__main__":
    main()
