"""The int8 table of the docs, measured: the demo model (`examples/train.py`'s
default, the CIFAR ResNet-20 on the bundled digits) trained as the demo trains
it, exported to LiteRT in float32 and with full-integer post-training int8
quantization (`keras_blocks.deploy.export_model(..., int8=True)`), and each
run on the digits test split by the LiteRT interpreter, one image at a time.

    KERAS_BACKEND=tensorflow python -m tools.int8_table
    KERAS_BACKEND=tensorflow python -m tools.int8_table --epochs 5 --seed 1

Measures the test accuracy of Keras, the float32 and the int8 file, the top-1
agreement of each file with Keras, the largest and mean absolute difference
of their softmax probabilities from Keras' (the demo model ends with a
softmax, so its outputs are probabilities), the file sizes (with the .keras
and .weights.h5 files for reference) and the median time of one image (batch
1, one interpreter thread). Also what a wrong calibration costs: the int8
file calibrated on the same training images unnormalized, as 0-255 uint8
pixels, when the model was trained on [0, 1] floats (`export_model` checks
the shape of the representative data, but cannot know their range).

Writes docs/snippets/int8_quantization.md and
benchmarks/results/int8_quantization.json. About 4 minutes on two CPU cores
(2.5 of them training the 10 epochs of the demo).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

if __package__ in (None, ""):  # run as `python tools/int8_table.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = ROOT / "docs" / "snippets" / "int8_quantization.md"
RESULTS = ROOT / "benchmarks" / "results" / "int8_quantization.json"
DATASET = "digits"
# Representative data: the first training images (the split is shuffled),
# as many as export_model reads.
CALIBRATION = 256
THREADS = 1  # one interpreter thread: steadier times on a shared machine


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # Defaults: the demo's, examples/train.py's EPOCHS and SEED (train
    # imports Keras).
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int)
    return parser.parse_args(argv)


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from examples import _distribute, train
from keras_blocks.deploy import ExportedModel, export_model


def train_demo(epochs, seed, logdir):
    """(model, size, train, test): the demo's model trained as the demo
    trains it (its data, split, optimizer, batch and callbacks)."""
    engine = _distribute.start(None)
    size = train.default_image_size(train.MODEL, DATASET)
    train_data, validation_data, test_data = train.load(DATASET, size, None, seed)
    model, _ = train.build_and_compile(
        train.MODEL, size, DATASET, train.LEARNING_RATE, seed, None, size
    )
    args = Namespace(epochs=epochs, batch_size=train.BATCH_SIZE, seed=seed)
    train.train(model, args, logdir, False, train_data, validation_data, engine)
    accuracy = train.evaluate(model, *test_data, engine)
    return model, size, train_data, test_data, float(accuracy)


def run_one_by_one(path, x):
    """(outputs, median seconds per image) of the file at batch 1."""
    exported = ExportedModel(path, threads=THREADS)
    exported(x[:1])  # warm-up: allocation
    outputs, seconds = [], []
    for image in x:
        start = time.perf_counter()
        outputs.append(exported(image[None]))
        seconds.append(time.perf_counter() - start)
    return np.concatenate(outputs), statistics.median(seconds), exported.size_bytes


def compare(probabilities, reference, y):
    return {
        "accuracy": float(np.mean(probabilities.argmax(-1) == y)),
        "top1_agreement": float(
            np.mean(probabilities.argmax(-1) == reference.argmax(-1))
        ),
        "max_abs_probability_difference": float(
            np.max(np.abs(probabilities - reference))
        ),
        "mean_abs_probability_difference": float(
            np.mean(np.abs(probabilities - reference))
        ),
    }


def cpu_name():
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(epochs, seed, directory):
    directory = Path(directory)
    model, size, (x_train, _), (x_test, y_test), accuracy = train_demo(
        epochs, seed, directory / "run"
    )
    reference = keras.ops.convert_to_numpy(model.predict(x_test, verbose=0))
    model.save(directory / "model.keras")
    model.save_weights(directory / "model.weights.h5")
    calibration = x_train[:CALIBRATION]
    files = {
        "float32": {},
        "int8": {"int8": True, "representative_data": calibration},
        # What a user with raw pixels passes: 0-255 uint8 images.
        "int8_unnormalized_calibration": {
            "int8": True,
            "representative_data": np.round(calibration * 255).astype("uint8"),
        },
    }
    rows = {
        "keras": {
            **compare(reference, reference, y_test),
            "size_bytes": (directory / "model.keras").stat().st_size,
            "weights_h5_bytes": (directory / "model.weights.h5").stat().st_size,
        }
    }
    rows["keras"]["accuracy"] = accuracy  # as train.py reports it
    for name, options in files.items():
        path = directory / f"{name}.tflite"
        start = time.perf_counter()
        export_model(model, path, "litert", **options)
        export_seconds = time.perf_counter() - start
        probabilities, seconds, size_bytes = run_one_by_one(path, x_test)
        rows[name] = {
            **compare(probabilities, reference, y_test),
            "size_bytes": size_bytes,
            "batch1_median_ms": seconds * 1e3,
            "export_seconds": round(export_seconds, 1),
        }
        print(f"{name}: {rows[name]}", flush=True)
    return {
        "backend": keras.config.backend(),
        "model": train.MODEL,
        "dataset": DATASET,
        "image_size": size,
        "epochs": epochs,
        "seed": seed,
        "train_images": len(x_train),
        "test_images": len(x_test),
        "calibration_images": len(calibration),
        "outputs": "softmax probabilities",
        "threads": THREADS,
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count(),
        "keras_version": keras.__version__,
        "rows": rows,
    }


def size_text(size_bytes):
    return f"{size_bytes / 1024:,.0f} KiB"


def snippet(result):
    rows = result["rows"]
    keras_row, float_row, int8_row = rows["keras"], rows["float32"], rows["int8"]
    wrong = rows["int8_unnormalized_calibration"]
    lines = [
        "| | Keras (float32) | LiteRT float32 | LiteRT int8 |",
        "| --- | --- | --- | --- |",
        "| Test accuracy | "
        + " | ".join(f"{r['accuracy']:.2%}" for r in (keras_row, float_row, int8_row))
        + " |",
        "| Top-1 agreement with Keras | | "
        f"{float_row['top1_agreement']:.2%} | {int8_row['top1_agreement']:.2%} |",
        "| Max / mean abs. probability difference from Keras | | "
        + " | ".join(
            f"{r['max_abs_probability_difference']:.1e} / "
            f"{r['mean_abs_probability_difference']:.1e}"
            for r in (float_row, int8_row)
        )
        + " |",
        f"| File size | {size_text(keras_row['size_bytes'])} (.keras), "
        f"{size_text(keras_row['weights_h5_bytes'])} (.weights.h5) | "
        f"{size_text(float_row['size_bytes'])} | "
        f"{size_text(int8_row['size_bytes'])} "
        f"({float_row['size_bytes'] / int8_row['size_bytes']:.1f}x smaller) |",
        "| Batch-1 time, median | | "
        f"{float_row['batch1_median_ms']:.2f} ms | "
        f"{int8_row['batch1_median_ms']:.2f} ms |",
        "",
        f"Measured by `tools/int8_table.py`: the demo's {result['model']} trained "
        f"as `examples/train.py` trains it ({result['epochs']} epochs, seed "
        f"{result['seed']}) on the {result['train_images']} training digits at "
        f"{result['image_size']}x{result['image_size']}, int8 calibrated on "
        f"{result['calibration_images']} of them, all evaluated on the "
        f"{result['test_images']} test digits by the LiteRT interpreter one image "
        f"at a time ({result['threads']} interpreter thread on a "
        f"{result['cpu_cores']}-core {result['cpu']}, {result['backend']} "
        "backend); the differences are of the softmax probabilities, the "
        "largest and the mean over every test image and class.",
        "",
        "!!! warning",
        "    Calibrate on images preprocessed exactly as the model sees them: "
        "the same int8 export calibrated on the same images as 0-255 pixels "
        f"(the model takes [0, 1]) scores {wrong['accuracy']:.2%} "
        f"(top-1 agreement with Keras {wrong['top1_agreement']:.2%}), with no "
        "error: `export_model` checks the shape of the representative data, "
        "not their range.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    if args.epochs is None:
        args.epochs = train.EPOCHS
    if args.seed is None:
        args.seed = train.SEED
    if keras.config.backend() != "tensorflow":
        raise SystemExit(
            "LiteRT export runs on the TensorFlow backend: KERAS_BACKEND=tensorflow"
        )
    with tempfile.TemporaryDirectory() as directory:
        result = measure(args.epochs, args.seed, directory)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    SNIPPET.write_text(snippet(result))
    print(SNIPPET.read_text())
    return result


if __name__ == "__main__":
    main()
