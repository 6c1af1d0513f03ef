"""keras_blocks against the Keras equivalents, side by side: the one command.

    KERAS_BACKEND=tensorflow python -m benchmarks.run           # everything
    KERAS_BACKEND=jax python -m benchmarks.run --only models lrn
    KERAS_BACKEND=torch python -m benchmarks.run --only models native
    python -m benchmarks.run --smoke                            # CI: tiny, 1 repeat

Every figure is a ratio, ours / reference (below 1.0 is faster), measured in
this process with `_harness.compare`: warm-up excluded, the two sides
interleaved, the median of `--repeats`, and the spread of the per-pair ratios.

- `models`: inference (`predict_on_batch`) and training-step
  (`train_on_batch`) time of ResNet50 and EfficientNetB0 against
  `keras.applications`' (the same layers, initializers, batch, input, dtype).
- `native` (PyTorch backend): the same two models against torchvision's
  `resnet50` and `efficientnet_b0` in plain PyTorch, ours in both data
  formats, inference and training step.
- `throughput`: training images/second of the same pairs on a batch that
  stays on the device (for a GPU: `--dtype-policy mixed_bfloat16
  --jit-compile true`).
- `graphs` (TensorFlow): the operations of the traced graphs of the same
  pairs, by type: what a block adds, without a timing's noise.
- `build`: construction time of EfficientNetB7 and ResNet152.
- `lrn`: `LocalResponseNormalization` (keras.ops) against TensorFlow's fused
  `tf.nn.local_response_normalization`, forward and backward, at AlexNet's
  shapes and as the channels grow.
- `callbacks`: epoch time of a CIFAR ResNet-20 with each of the library's
  callbacks at its defaults, and all three, against none, and the time
  spent in their hooks (`HookClock`).
- `distribute`: training-step time of a CIFAR ResNet-20 on N replicas
  against 1 at the same batch per replica (TensorFlow's `MirroredStrategy`,
  with and without synchronized batch normalization; JAX's
  `keras.distribution.DataParallel`), in a child process that sets up the
  devices (N logical CPUs on a machine without N GPUs); the ratio of the
  step times and the scaling efficiency.
- `growth`: blocks, parameters, MACs (TensorFlow) and build time of
  EfficientNet as `phi` goes from 0 to 9, beside the presets' MACs and the
  paper's B0-B7 FLOPs.
- `deploy` (TensorFlow): inference latency at batch 1 and throughput at
  batch 32 of the CIFAR ResNet-20, ResNet-50 and EfficientNet-B0 in Keras
  (`predict_on_batch`, the reference), the SavedModel, LiteRT and ONNX
  Runtime, exported by `keras_blocks.deploy`; with the file sizes.

Each section is a module of this package with a `measure(args)` that returns
its rows; this module is the command line that runs them. Writes
`benchmarks/results/benchmarks_<backend>.json` (everything, raw times
included; `_<accelerator>` added on a GPU) and
`docs/snippets/benchmarks_<backend>.md` (the tables the Benchmarks page
includes), and with `deploy` measured, `deploy_benchmark.md` beside it (its
tables alone, for the Deployment page). `--only` replaces those sections and
keeps the others; `--render` writes the tables again from the JSON. Each
section measured records the machine's 1-minute load average before and
after it, and `--note` (e.g. that the machine was shared).

    KERAS_BACKEND=tensorflow python -m benchmarks.run --only deploy --note "..."
"""

import argparse
import importlib
import json
import math
import os
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SNIPPETS = ROOT / "docs" / "snippets"
# The sections, in the order of the results file: name: module of this
# package (imported after the arguments are parsed: they import Keras).
SECTION_MODULES = {
    "models": "models",
    "native": "native",
    "throughput": "throughput",
    "graphs": "graphs",
    "build": "build",
    "lrn": "lrn",
    "callbacks": "callbacks_overhead",
    "distribute": "distribute",
    "growth": "growth",
    "deploy": "deploy",
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", nargs="+", choices=SECTION_MODULES, default=list(SECTION_MODULES)
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--throughput-batch-size", type=int, default=32)
    parser.add_argument("--throughput-steps", type=int, default=10)
    parser.add_argument(
        "--distribute-replicas",
        type=int,
        default=2,
        help="distribute: replicas against 1 (GPUs, else logical CPU devices)",
    )
    parser.add_argument(
        "--distribute-batch-size",
        type=int,
        default=32,
        help="distribute: the batch of each replica (the global batch is N times it)",
    )
    parser.add_argument("--distribute-steps", type=int, default=5)
    parser.add_argument(
        "--dtype-policy",
        default="float32",
        help="e.g. mixed_bfloat16, for the whole run: meant for models, "
        "throughput, graphs and build (lrn compares with float32 TensorFlow)",
    )
    parser.add_argument(
        "--jit-compile",
        choices=("auto", "true", "false"),
        default="auto",
        help="compile(jit_compile=...) of the models: auto is XLA on a GPU "
        "with TensorFlow, always on JAX, never on PyTorch",
    )
    parser.add_argument(
        "--note",
        help="said with the sections this run measures, e.g. 'a shared machine'",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, 1 repeat: batches of 2 32x32 images, one warm-up "
        "call in models and native (ResNet50 only); build's EfficientNetB0 and "
        "ResNet50 built once each; callbacks', distribute's and deploy's CIFAR "
        "ResNet-8 on 8x8 images; growth's phi 0 and 1",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: write the table again from the JSON file",
    )
    parser.add_argument("--output", type=Path, help="JSON file (default: results/)")
    parser.add_argument("--markdown", type=Path, help="table (default: docs/snippets/)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from benchmarks import _harness, _markdown

SECTIONS = {
    name: importlib.import_module(f"benchmarks.{module}")
    for name, module in SECTION_MODULES.items()
}


def main(argv=None):
    args = parse_args(argv)
    if args.smoke:
        args.repeats, args.batch_size, args.image_size = 1, 2, 32
        args.throughput_batch_size, args.throughput_steps = 2, 2
        args.distribute_batch_size, args.distribute_steps = 2, 1
    args.jit_compile = {"true": True, "false": False}.get(
        args.jit_compile, args.jit_compile
    )
    keras.config.set_dtype_policy(args.dtype_policy)
    backend = keras.config.backend()
    environment = _harness.environment()
    # Results of an accelerator go to their own files, named after it.
    accelerator = environment["accelerator"]
    suffix = f"_{re.sub('[^a-z0-9]+', '-', accelerator.lower())}" if accelerator else ""
    stem = f"benchmarks_{backend}{suffix}"
    output = args.output or RESULTS / f"{stem}.json"
    table = args.markdown or SNIPPETS / f"{stem}.md"
    deploy_table = table.with_name(f"deploy_benchmark{suffix}.md")
    if args.render:
        results = json.loads(output.read_text())
        _write_tables(results, table, deploy_table)
        return results
    results = _earlier_results(output, environment, args)
    for name in args.only:
        print(f"{name}:", flush=True)
        start, load = time.perf_counter(), _load_average()
        results[name] = SECTIONS[name].measure(args)
        # A section with settings of its own says which (`distribute`).
        settings = getattr(SECTIONS[name], "settings", _settings)(args)
        results["measured"][name] = {
            "date": environment["date"],
            "settings": settings + (" (smoke)" if args.smoke else ""),
            "load_average": [load, _load_average()],
            **({"note": args.note} if args.note else {}),
        }
        print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    results["environment"] = environment
    # The sections in the order of SECTIONS, whichever were measured first.
    results["measured"] = {
        name: results["measured"][name]
        for name in SECTIONS
        if name in results["measured"]
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=_plain) + "\n")
    print(f"wrote {output}")
    _write_tables(results, table, deploy_table)
    return results


def _write_tables(results, table, deploy_table):
    """The tables of `results`; the deploy tables alone too, if measured."""
    table.write_text(_markdown.markdown(results) + "\n")
    print(f"wrote {table}")
    if results.get("deploy"):
        deploy_table.write_text(_markdown.deploy_markdown(results) + "\n")
        print(f"wrote {deploy_table}")


def _load_average():
    """The 1-minute load average of the machine (None where unknown)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _settings(args):
    """The settings of a run, as the table says when a section was measured."""
    return (
        f"batch {args.batch_size}, {args.image_size}x{args.image_size} images, "
        f"{args.repeats} repeats, {args.dtype_policy}, jit_compile={args.jit_compile}"
    )


def _earlier_results(output, environment, args):
    """The sections of `output` that this run does not measure, kept when
    they were measured with the same backend and versions on the same kind
    of machine, so that `--only` updates a file section by section."""
    fresh = {"environment": environment, "measured": {}}
    if args.smoke or not output.exists():
        return fresh
    earlier = json.loads(output.read_text())
    same = ("backend", "versions", "devices", "machine")
    if "measured" not in earlier or any(
        earlier["environment"].get(key) != environment[key] for key in same
    ):
        print(f"{output} is from another environment: starting a new file")
        return fresh
    kept = [name for name in earlier["measured"] if name not in args.only]
    if kept:
        print(f"keeping {', '.join(kept)} from {output}")
    return {
        "environment": environment,
        "measured": {name: earlier["measured"][name] for name in kept},
        **{name: earlier[name] for name in kept},
    }


def _plain(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"{type(value)} is not JSON serializable")


if __name__ == "__main__":
    main()
