"""The export table of the docs, measured: every reference model exported by
`keras_blocks.deploy.export_model` to each format of the current backend,
read back by the format's own runtime (`ExportedModel`), and its outputs
compared with Keras' on the same inputs.

    OMP_NUM_THREADS=1 KERAS_BACKEND=tensorflow python -m tools.export_table
    KERAS_BACKEND=torch python -m tools.export_table --formats onnx
    KERAS_BACKEND=tensorflow python -m tools.export_table resnet18 alexnet

Each model is built at its smallest input size with the tests' 10 classes
(`CLASSES`: the sizes on disk are those of a 10-class classifier, not of the
builders' default 1000) and weights (`build` in tests/deploy/test_export_models.py:
random weights and BN statistics, milder for SE-ResNets, EfficientNet's fresh)
and no classifier activation, so logits are compared: the difference is
max |exported - Keras| / max |Keras| on a batch of 2 random inputs (the first
output of a model with several). Also recorded: the seconds `export_model`
took and the size on disk. Results merge into
benchmarks/results/export_differences.json (a row per model, backend and
format: a run replaces its own and keeps the others, after every model), and
docs/snippets/export_differences.md is written from the whole file. The deep
ResNets and EfficientNets convert slowest: all 49 models take tens of minutes.
"""

import argparse
import contextlib
import fcntl
import gc
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from examples._cli import model_name

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = ROOT / "docs" / "snippets" / "export_differences.md"
RESULTS = ROOT / "benchmarks" / "results" / "export_differences.json"
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
# keras_blocks.deploy.FORMATS, by the table's names for them.
FORMAT_NAMES = {"tf_saved_model": "SavedModel", "litert": "LiteRT", "onnx": "ONNX"}
# The table's columns, in order: (format, backend).
COLUMNS = (
    ("tf_saved_model", "tensorflow"),
    ("litert", "tensorflow"),
    ("onnx", "tensorflow"),
    ("onnx", "torch"),
    ("tf_saved_model", "jax"),
    ("onnx", "jax"),
)
FILE_NAMES = {"tf_saved_model": "model", "litert": "model.tflite", "onnx": "model.onnx"}
BATCH = 2
# The tests' bound on the difference (tests/deploy/test_export_models.py).
TOLERANCE = 1e-5


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "models", nargs="*", type=model_name, help="models (default: all)"
    )
    parser.add_argument(
        "--formats",
        nargs="+",
        choices=FORMAT_NAMES,
        help="formats (default: those Keras exports from this backend)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

sys.path.insert(0, str(ROOT))  # the randomization of the tests

from keras_blocks.deploy import ExportedModel, export_model
from keras_blocks.models import list_models, model_entry
from tests.deploy.test_export_models import CLASSES, build


def measure(name, formats, directory):
    """One row per format for model `name`: difference, seconds, size."""
    size = model_entry(name).min_size
    model = build(name)  # the tests' weights (randomized, or why not)
    shape = (BATCH, *model.inputs[0].shape[1:])
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    expected = _first(model(x, training=False))
    scale = float(np.abs(expected).max())  # as the tests compare
    rows = []
    for format in formats:
        row = {
            "model": name,
            "backend": keras.config.backend(),
            "format": format,
            "input_size": size,
        }
        path = os.path.join(directory, f"{name}.{format}.{FILE_NAMES[format]}")
        try:
            start = time.perf_counter()
            export_model(model, path, format)
            row["export_seconds"] = round(time.perf_counter() - start, 2)
            exported = ExportedModel(path, threads=1)
            row["size_bytes"] = exported.size_bytes
            difference = np.abs(_first(exported(x)) - expected).max() / scale
            row["max_relative_difference"] = float(difference)
        except Exception as error:  # recorded in the table: the run goes on
            message = str(error).strip().splitlines()
            row["error"] = f"{type(error).__name__}: {message[0] if message else ''}"
            traceback.print_exc()
        rows.append(row)
        print(_line(row), flush=True)
        _remove(path)
    return rows


def _first(outputs):
    if isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    elif isinstance(outputs, dict):
        outputs = next(iter(outputs.values()))
    return keras.ops.convert_to_numpy(outputs)


def _remove(path):
    import shutil

    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)


def _line(row):
    if "error" in row:
        return f"{row['model']:24s} {row['format']:15s} {row['error'][:200]}"
    return (
        f"{row['model']:24s} {row['format']:15s} "
        f"difference {row['max_relative_difference']:.1e}  "
        f"export {row['export_seconds']:6.1f} s  "
        f"{row['size_bytes'] / 1e6:8.2f} MB"
    )


@contextlib.contextmanager
def _locked():
    """The results file, locked for read-modify-write: two runs (TensorFlow
    and PyTorch) may merge into it at once."""
    with open(str(RESULTS) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def merge(rows):
    """Writes `rows` into the results file, replacing the same (model,
    backend, format), and the table from the whole file."""
    with _locked():
        kept = []
        if RESULTS.exists():
            kept = json.loads(RESULTS.read_text())["rows"]
        keys = {(r["model"], r["backend"], r["format"]) for r in rows}
        kept = [r for r in kept if (r["model"], r["backend"], r["format"]) not in keys]
        merged = _sorted(kept + rows)
        results = {"tolerance": TOLERANCE, "batch": BATCH, "rows": merged}
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
        SNIPPET.write_text(table(merged))


def _sorted(rows):
    order = {name: i for i, name in enumerate(list_models())}
    columns = {column: i for i, column in enumerate(COLUMNS)}
    return sorted(
        rows,
        key=lambda r: (
            order.get(r["model"], len(order)),
            r["model"],
            columns.get((r["format"], r["backend"]), len(columns)),
        ),
    )


def table(rows):
    """The Markdown table: a row per model, a column per format and backend."""
    cells = {(r["model"], r["format"], r["backend"]): r for r in rows}
    columns = [c for c in COLUMNS if any((f, b) == c for _, f, b in cells)]
    models = list(dict.fromkeys(r["model"] for r in rows))
    header = ["Model", "Input"] + [
        f"{FORMAT_NAMES[f]} ({BACKEND_NAMES[b]})" for f, b in columns
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for model in models:
        size = next(r["input_size"] for r in rows if r["model"] == model)
        line = [f"`{model}`", f"{size}x{size}"]
        for format, backend in columns:
            line.append(_cell(cells.get((model, format, backend))))
        lines.append("| " + " | ".join(line) + " |")
    lines += [
        "",
        "Each cell: max |exported - Keras| / max |Keras| on the logits "
        f"of {BATCH} random inputs · seconds `export_model` took · size on disk. "
        f"Every model is built with {CLASSES} classes.",
    ]
    return "\n".join(lines) + "\n"


def _cell(row):
    if row is None:
        return "—"
    if "error" in row:
        return "fails: " + row["error"].replace("|", "\\|")[:120]
    return (
        f"{row['max_relative_difference']:.0e} · {row['export_seconds']:.0f} s · "
        f"{row['size_bytes'] / 1e6:.1f} MB"
    )


def main(argv=None):
    args = parse_args(argv)
    backend = keras.config.backend()
    formats = args.formats or [f for f, b in COLUMNS if b == backend]
    with tempfile.TemporaryDirectory() as directory:
        for name in args.models or list_models():
            merge(measure(name, formats, directory))
            keras.backend.clear_session()
            gc.collect()


if __name__ == "__main__":
    main()
