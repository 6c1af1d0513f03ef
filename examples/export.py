"""Export a reference model for deployment, run it back, and compare with Keras.

    python -m examples.export --model cifar_resnet20 --weights w.weights.h5 \\
        --format onnx
    python -m examples.export --model resnet50 --weights resnet50.weights.h5 \\
        --format litert --int8
    python -m examples.export --weights runs/transfer-resnet18/model.keras \\
        --format tf_saved_model

Formats, as `keras_blocks.deploy.export_model` and Keras name them:
`tf_saved_model` (a folder, for TensorFlow Serving and TensorFlow), `litert`
(a `.tflite` file, for phones and edge devices) and `onnx` (an `.onnx` file,
for ONNX Runtime and anything else); the docs' "Deployment" page says which to
pick. The model is written with `keras_blocks.deploy.export_model`
(whole or not at all, never over an existing path), read back with its
format's own runtime (`keras_blocks.deploy.ExportedModel`: the SavedModel
with `tf.saved_model.load`, LiteRT with its interpreter, ONNX with ONNX
Runtime), and the command prints the largest difference between the exported
model's outputs and Keras' on a batch of the bundled digits test images (at
the model's input size and channels, preprocessed as examples/train.py does;
random images in [0, 1] if scikit-learn is missing or the model's input is
neither grey nor RGB, which it says; in 0-255 for a model of uint8 inputs),
the file size, and the median inference
time at batch 1 of Keras (`predict_on_batch`) and of the runtime. All of it
happens on a file beside the output, moved into place last.

`--weights` is what this repository's scripts write:

- a `.weights.h5` file of examples/convert_weights.py (ImageNet weights: the
  model, its classes, size and layout come from the file), or of
  `model.save_weights` (a model of examples/train.py: pass `--model`, and the
  `--image-size` and `--classes` it was built with, on JAX and PyTorch the
  `model.weights.h5` of a checkpoint folder);
- a `.keras` file (`model.save`, as examples/transfer_learning.py writes): the
  model comes from the file, and `--model`, if given, must be its name.

Without `--weights` the command refuses to export unless `--random-weights`
is given: an export of random weights is almost always a mistake.

`--int8` (LiteRT only) quantizes weights and activations to 8-bit integers
after training, calibrated on up to 256 images of the digits training split
(preprocessed as training saw them). An int8 model is not expected to match
the float one within 1e-5: its outputs are compared by the agreement of the
top-1 class, and the mean absolute difference.

A bad input is refused with exit status 2 and a one-line message, and nothing
is written: an unknown model or format, a missing or unreadable weights file,
weights of another model or shape, an output path that exists, `--int8` for
another format than LiteRT; so does a failure after the export (the file read
back or compared).
"""

import argparse
import difflib
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

if __package__ in (None, ""):  # run as `python examples/export.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples._cli import HelpFormatter, Refusal, model_name, positive_int, refusing

# --format's choices: the library's names, `keras_blocks.deploy.FORMATS`
# (written out so that --help answers before Keras loads; test_export_command
# checks that they are the library's).
FORMATS = ("tf_saved_model", "litert", "onnx")
# What the default output is called after the model's name.
ENDINGS = {"tf_saved_model": "_saved_model", "litert": ".tflite", "onnx": ".onnx"}
CLASSES = 10  # examples/train.py's datasets (digits, CIFAR-10)
COMPARED = 64  # test images the outputs are compared on
CALIBRATION = 256  # training images int8 quantization is calibrated on
RUNS = 20  # timed runs at batch 1, after WARMUP
WARMUP = 3
SEED = 0


class ExportError(Refusal):
    """A user error: the message says what to do."""


def format_name(text):
    """argparse `type=` for --format: one of the library's names."""
    if text in FORMATS:
        return text
    close = difflib.get_close_matches(text.strip().lower(), FORMATS, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]}? " if close else ""
    raise argparse.ArgumentTypeError(
        f"invalid choice: {text!r} ({hint}choose from {', '.join(FORMATS)})"
    )


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter, allow_abbrev=False
    )
    parser.add_argument(
        "--model",
        type=model_name,
        metavar="NAME",
        help="a reference model of keras_blocks.models (python -m "
        "examples.models --list lists them); "
        "default with a converted or .keras file: the file's",
    )
    parser.add_argument(
        "--weights", metavar="PATH", help="a .weights.h5 or .keras file (see above)"
    )
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="export the model with random weights (to try the formats)",
    )
    parser.add_argument(
        "--format",
        type=format_name,
        required=True,
        metavar="{" + ",".join(FORMATS) + "}",
        help="tf_saved_model (TF Serving, TensorFlow), litert (phones, edge) or "
        "onnx (ONNX Runtime, anything else)",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="LiteRT only: full-integer quantization calibrated on the digits "
        "training images",
    )
    parser.add_argument(
        "--output",
        metavar="PATH",
        help="default: MODEL.onnx, MODEL.tflite (MODEL_int8.tflite) or "
        "MODEL_saved_model/ in the current directory; never overwritten",
    )
    parser.add_argument(
        "--image-size",
        type=positive_int,
        help="default: a converted file's, else 16 (digits) or the model's "
        "smallest input",
    )
    parser.add_argument(
        "--classes",
        type=positive_int,
        help=f"classes of a model of examples/train.py (default: {CLASSES}); a "
        "converted file's are its own",
    )
    parser.add_argument(
        "--data-format",
        choices=("channels_last", "channels_first"),
        help="the layout to build the model in (default: keras.json's)",
    )
    args = parser.parse_args(argv)
    if args.int8 and args.format != "litert":
        parser.error(
            "--int8: post-training int8 quantization is a LiteRT conversion: "
            f"use --format litert (received --format {args.format})."
        )
    if args.weights is None and not args.random_weights:
        parser.error(
            "--weights is required: an export of random weights is almost always "
            "a mistake (pass --random-weights to export one anyway)."
        )
    if args.weights is not None and args.random_weights:
        parser.error("--weights and --random-weights: give one of them.")
    if args.weights is None and args.model is None:
        parser.error("--random-weights needs --model.")
    return args


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from examples import datasets, train
from keras_blocks.deploy import ExportedModel, check_output_path, export_model


def default_output(name, format, int8):
    return os.path.abspath(f"{name}{'_int8' * int8}{ENDINGS[format]}")


def _load_error(path, error):
    """Keras' loading error, condensed to the line that says what differs."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    shapes = [line for line in lines if "shape" in line]
    line = (shapes or lines or [repr(error)])[0].split(" Target variable")[0]
    return line.rstrip(".")


def build(name, image_size, classes, **options):
    try:
        return train.build(name, image_size, classes, **options)
    except ValueError as error:  # such as an image size the model cannot take
        raise ExportError(str(error)) from None


def keras_file_model(path, name, image_size, classes):
    """The model of a `.keras` file, checked against --model."""
    if image_size is not None or classes is not None:
        raise ExportError(
            f"{path} holds a whole model, with its own input size and classes: "
            "leave --image-size and --classes out."
        )
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # a damaged zip, an unknown layer, ...
        raise ExportError(
            f"Cannot load {path} as a Keras model ({_load_error(path, error)})."
        ) from None
    # examples/transfer_learning.py names its model after the backbone.
    if name is not None and model.name not in (name, f"{name}_transfer"):
        raise ExportError(
            f"{path} holds the model {model.name!r}, not {name}: pass --model "
            f"{model.name.removesuffix('_transfer')}, or leave --model out."
        )
    return model, None


def weights_file_model(path, name, image_size, classes):
    """A model built and loaded from a `.weights.h5` file; returns (model, the
    normalization record of converted ImageNet weights or None)."""
    from examples import convert_weights

    try:
        metadata = convert_weights.read_metadata(path)
    except convert_weights.ConversionError:
        metadata = None  # a file of model.save_weights: checked on loading
    if metadata is not None:
        name = name or metadata["model"]
        if classes is not None and classes != metadata["classes"]:
            raise ExportError(
                f"{path} holds a classifier of {metadata['classes']} classes: "
                "leave --classes out."
            )
        size = image_size or metadata["image_size"][0]
        model = build(
            name,
            size,
            metadata["classes"],
            **convert_weights.build_options(name, metadata["source"]),
        )
        try:
            convert_weights.load_converted(model, path, name)
        except ValueError as error:
            raise ExportError(str(error)) from None
        return model, {"mean": metadata["mean"], "std": metadata["std"]}
    if name is None:
        raise ExportError(
            f"{path} does not say which model it holds (it was not written by "
            "examples/convert_weights.py): pass --model."
        )
    size = image_size or train.default_image_size(name, "digits")
    classes = classes or CLASSES
    model = build(name, size, classes)
    try:
        model.load_weights(path)
    except Exception as error:  # h5py's OSError, Keras' ValueError
        raise ExportError(
            f"Cannot load {path} into {name} at {size}x{size} with {classes} "
            f"classes: {_load_error(path, error)}. Pass the --model, "
            "--image-size and --classes it was built with."
        ) from None
    return model, None


def load_model(args):
    """(model, normalization record or None, what the weights are)."""
    if args.weights is None:
        size = args.image_size or train.default_image_size(args.model, "digits")
        keras.utils.set_random_seed(SEED)
        return build(args.model, size, args.classes or CLASSES), None, "random"
    path = Path(args.weights)
    if path.is_dir():
        raise ExportError(f"--weights: {path} is a folder: {folder_hint(path)}")
    if not path.is_file():
        raise ExportError(f"--weights: no such file: {path}")
    if path.name.endswith(".keras"):
        loader = keras_file_model
    elif path.name.endswith(".weights.h5"):
        loader = weights_file_model
    else:
        raise ExportError(
            f"--weights: {path} is neither a .weights.h5 nor a .keras file (what "
            "model.save_weights and model.save write). A TensorFlow checkpoint "
            "of examples/train.py holds the optimizer's state too: save the "
            "model's weights with model.save_weights first."
        )
    model, normalization = loader(path, args.model, args.image_size, args.classes)
    return model, normalization, str(path)


def folder_hint(path):
    """What to pass instead of the folder `path` (a run's checkpoints, as the
    docs' Deployment page says)."""
    inside = path / "model.weights.h5"  # a checkpoint of JAX or PyTorch
    if inside.is_file():
        return f"pass a .keras or .weights.h5 file, here {inside} (the model's)."
    return (
        "pass a .keras or .weights.h5 file. For a checkpoint of "
        "examples/train.py, restore it into a fresh model (the docs' Callbacks "
        'page, "the best model"), then model.save_weights("model.weights.h5") '
        "and pass that file."
    )


def channels_first(model):
    """Whether `model` takes images channels first, from its input shape."""
    shape = model.input_shape
    return shape[-1] not in (1, 3) and shape[1] in (1, 3)


def images(model, normalization):
    """(test images, calibration images, their source, why they are random or
    None), of the model's input shape, preprocessed as examples/train.py
    does: the digits at the model's size (grey: one channel, or three), else
    random images in [0, 1]."""
    first = channels_first(model)
    shape = model.input_shape[1:]
    size, channels = (shape[1:], shape[0]) if first else (shape[:2], shape[-1])
    layout = "channels_first" if first else "channels_last"
    why = None
    if channels not in (1, 3):
        why = f"the digits are grey or RGB, and the model takes {channels} channels"
    else:
        try:
            # 8x8, three equal channels, in the configured layout
            (x_train, _), (x_test, _) = datasets.load("digits")
        except ImportError:
            why = "scikit-learn, which has the digits, is not installed"
    if why is None:
        source = "digits"
        if (keras.config.image_data_format() == "channels_first") != first:
            axes = (0, 3, 1, 2) if first else (0, 2, 3, 1)
            x_train, x_test = (np.transpose(x, axes) for x in (x_train, x_test))
        channel = slice(0, channels)
        x_train, x_test = (
            x[:, channel] if first else x[..., channel] for x in (x_train, x_test)
        )
    else:
        source = "random"
        rng = np.random.default_rng(SEED)
        x_train, x_test = (
            rng.uniform(0, 1, (n, channels, *size) if first else (n, *size, channels))
            for n in (CALIBRATION, COMPARED)
        )
    resized = []
    for x, count in ((x_test, COMPARED), (x_train, CALIBRATION)):
        x = np.asarray(x[:count], "float32")
        x = keras.ops.image.resize(x, tuple(size), data_format=layout)
        x = np.asarray(keras.ops.convert_to_numpy(x), "float32")
        if normalization is not None:  # ImageNet weights: as their source
            shape = (1, -1, 1, 1) if first else (-1,)
            mean = np.reshape(np.asarray(normalization["mean"], "float32"), shape)
            std = np.reshape(np.asarray(normalization["std"], "float32"), shape)
            x = (x - mean) / std
        resized.append(np.ascontiguousarray(in_dtype(x, model.inputs[0].dtype)))
    return (*resized, source, why)


def in_dtype(x, dtype):
    """Images in [0, 1] as a model of inputs of `dtype` takes them: float32,
    or integers in 0-255 (uint8's range, as an image file holds them; 0-127
    for int8), or bool."""
    dtype = keras.backend.standardize_dtype(dtype)
    if dtype == "bool":
        return x > 0.5
    if not dtype.startswith(("int", "uint")):
        return x
    high = min(255, np.iinfo(dtype).max)
    return np.round(np.clip(x, 0, 1) * high).astype(dtype)


def median_ms(run, x):
    for _ in range(WARMUP):
        run(x)
    seconds = []
    for _ in range(RUNS):
        start = time.perf_counter()
        run(x)
        seconds.append(time.perf_counter() - start)
    return 1000 * statistics.median(seconds)


def run_batches(exported, x):
    """`exported` on `x`, in the batch size it takes if it has a fixed one."""
    batch = exported.input_shape[0] if exported.input_shape else None
    if not isinstance(batch, int) or batch <= 0 or batch == len(x):
        return exported(x)
    return np.concatenate([exported(x[i : i + batch]) for i in range(0, len(x), batch)])


def size_text(size):
    return f"{size / 2**20:.2f} MB ({size:,} bytes)"


def first_output(outputs):
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def export_and_compare(model, path, args, x_test, x_calibration):
    """Exports to `path`, runs the file on `x_test` and times it; the figures."""
    start = time.perf_counter()
    try:
        export_model(
            model,
            path,
            args.format,
            int8=args.int8,
            representative_data=x_calibration if args.int8 else None,
        )
    except (ValueError, OSError, ImportError) as error:
        raise ExportError(str(error)) from None
    seconds = time.perf_counter() - start
    try:
        return compare(model, ExportedModel(path), x_test) | {"export_seconds": seconds}
    except Exception as error:  # a runtime's own errors (ONNX Runtime's, ...)
        reason = str(error).strip().splitlines()[0] if str(error) else repr(error)
        raise ExportError(reason) from None


def compare(model, exported, x_test):
    """The differences of `exported` from Keras on `x_test`, and the times."""
    actual = first_output(run_batches(exported, x_test))
    expected = np.asarray(first_output(model.predict_on_batch(x_test)))
    difference = np.abs(actual - expected)
    one = x_test[:1]
    return {
        "largest_difference": float(difference.max()),
        "mean_difference": float(difference.mean()),
        "output_scale": float(np.abs(expected).max()),
        "agreement": float(np.mean(actual.argmax(-1) == expected.argmax(-1))),
        "size_bytes": exported.size_bytes,
        "keras_ms": median_ms(model.predict_on_batch, one),
        "exported_ms": median_ms(lambda x: run_batches(exported, x), one),
    }


def export(args):
    """Exports, reloads and compares; returns the figures printed."""
    model, normalization, weights = load_model(args)
    name = args.model or model.name.removesuffix("_transfer")
    output = os.path.abspath(
        args.output or default_output(name, args.format, args.int8)
    )
    if os.path.lexists(output):  # before the minutes of an export
        raise ExportError(
            f"{output} exists: the export never overwrites. Pass another "
            "--output, or delete it first."
        )
    try:  # the user's path, before the temporary file beside it is made
        check_output_path(output, args.format)
    except (ValueError, OSError) as error:
        raise ExportError(str(error)) from None
    x_test, x_calibration, source, why = images(model, normalization)
    parent = os.path.dirname(output)
    # Written beside `output`, run and compared there, and moved into place
    # last: a failure (or Ctrl-C) at any step leaves nothing.
    try:
        scratch = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.", dir=parent)
    except OSError as error:
        raise ExportError(f"Cannot write {output}: {error.strerror}.") from None
    try:
        partial = os.path.join(scratch, os.path.basename(output))
        figures = export_and_compare(model, partial, args, x_test, x_calibration)
        if os.path.lexists(output):
            raise ExportError(f"{output} appeared during the export: kept.")
        os.replace(partial, output)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    shown = args.format + " int8" * args.int8
    first = channels_first(model)
    height, width = x_test.shape[2:] if first else x_test.shape[1:3]
    layout = "channels_first" if first else "channels_last"
    print(
        f"{model.name} ({'random weights' if weights == 'random' else weights}) "
        f"at {height}x{width}, {layout}, backend {keras.config.backend()}"
    )
    print(
        f"Wrote {output} ({shown}) in {figures['export_seconds']:.1f} s: "
        f"{size_text(figures['size_bytes'])}"
    )
    if weights != "random":
        print(f"Keras file: {size_text(os.path.getsize(weights))}")
    print(
        f"Outputs on {len(x_test)} {source} test images, {shown} against Keras "
        f"(outputs up to {figures['output_scale']:.3g}):"
    )
    if why:
        print(f"  (random images in [0, 1]: {why})")
    if args.int8:
        print(
            "  int8 outputs are not expected within 1e-5 of the float model's: "
            "compared by the agreement of the top-1 class and the mean "
            "difference (calibrated on "
            f"{min(CALIBRATION, len(x_calibration))} {source} training images)"
        )
        print(
            f"  top-1 agreement {figures['agreement']:.1%}, mean |difference| "
            f"{figures['mean_difference']:.3g}, largest "
            f"{figures['largest_difference']:.3g}"
        )
    else:
        print(
            f"  largest |difference| {figures['largest_difference']:.3g}, top-1 "
            f"agreement {figures['agreement']:.1%}"
        )
    print(
        f"Inference at batch 1 (median of {RUNS} runs): Keras "
        f"{figures['keras_ms']:.2f} ms, {shown} {figures['exported_ms']:.2f} ms "
        f"({figures['keras_ms'] / figures['exported_ms']:.1f}x as fast as Keras)"
    )
    return figures


def main(argv=None):
    args = parse_args(argv)
    # tf2onnx's check of a NumPy alias, inside Keras: not the user's concern.
    warnings.filterwarnings("ignore", category=FutureWarning, module="keras")
    previous = keras.config.image_data_format()
    if args.data_format:
        keras.config.set_image_data_format(args.data_format)
    try:
        with refusing("export.py"):
            return export(args)
    except KeyboardInterrupt:  # export_model has removed its partial file
        print("export.py: interrupted: nothing written", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        keras.config.set_image_data_format(previous)


if __name__ == "__main__":
    main()
