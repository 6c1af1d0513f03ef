"""keras_blocks against the Keras equivalents, side by side: the one command.

    KERAS_BACKEND=tensorflow python benchmarks/run.py           # everything
    KERAS_BACKEND=jax python benchmarks/run.py --only models lrn
    python benchmarks/run.py --smoke                            # CI: tiny, 1 repeat

Every figure is a ratio, ours / reference (below 1.0 is faster), measured in
this process with `_harness.compare`: warm-up excluded, the two sides
interleaved, the median of `--repeats`, and the spread of the per-pair ratios.

- `models`: inference (`predict_on_batch`) and training-step
  (`train_on_batch`) time of ResNet50 and EfficientNetB0 against
  `keras.applications`' (the same layers, initializers, batch, input, dtype).
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
- `growth`: blocks, parameters, MACs (TensorFlow) and build time of
  EfficientNet as `phi` goes from 0 to 9, beside the presets' MACs and the
  paper's B0-B7 FLOPs.

Writes `benchmarks/results/benchmarks_<backend>.json` (everything, raw times
included; `_<accelerator>` added on a GPU) and
`docs/snippets/benchmarks_<backend>.md` (the tables the Benchmarks page
includes). `--only` replaces those sections and keeps the others; `--render`
writes the table again from the JSON.
"""

import argparse
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from keras_blocks import callbacks, efficientnet, layers

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "examples")]

import _harness  # noqa: E402

import cifar_resnet  # noqa: E402
import resnet  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SNIPPETS = ROOT / "docs" / "snippets"
# The paper's FLOPs of B0-B7 (Tan & Le 2019, Table 2), in billions.
PAPER_FLOPS = (0.39, 0.70, 1.0, 1.8, 4.2, 9.9, 19, 37)
LRN_ARGS = {"depth_radius": 2, "bias": 2.0, "alpha": 1e-4, "beta": 0.75}


def _model_pairs(args):
    """(name, ours, reference) of the compared models, built and compiled
    alike: the same seed, optimizer, loss, dtype policy and `jit_compile`."""
    shape = (args.image_size, args.image_size, 3)
    builders = {
        "ResNet50": (
            lambda: resnet.ResNet(50, keras_applications=True, input_shape=shape),
            lambda: keras.applications.ResNet50(weights=None, input_shape=shape),
        ),
        "EfficientNetB0": (
            lambda: efficientnet.EfficientNetB0(input_shape=shape),
            lambda: keras.applications.EfficientNetB0(weights=None, input_shape=shape),
        ),
    }
    for name, (build_ours, build_reference) in builders.items():
        keras.backend.clear_session()
        built = []
        for build in (build_ours, build_reference):
            keras.utils.set_random_seed(0)
            model = build()
            model.compile(
                keras.optimizers.SGD(0.01, momentum=0.9),
                "sparse_categorical_crossentropy",
                jit_compile=args.jit_compile,
            )
            built.append(model)
        ours, reference = built
        assert ours.count_params() == reference.count_params(), name
        yield name, ours, reference


def _batch(args, batch_size):
    """A random batch of images and labels, as tensors of the backend (on
    its default device: the GPU when there is one)."""
    rng = np.random.default_rng(0)
    shape = (batch_size, args.image_size, args.image_size, 3)
    x = rng.uniform(0, 255, shape).astype("float32")
    y = rng.integers(0, 1000, batch_size)
    return keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)


def _input(args, batch_size):
    return (
        f"{batch_size}x{args.image_size}x{args.image_size}x3, "
        f"{keras.config.dtype_policy().name}"
    )


def models(args):
    """Inference and training step of ResNet50 and EfficientNetB0."""
    x, y = _batch(args, args.batch_size)
    rows = []
    for name, ours, reference in _model_pairs(args):
        for task, run in (
            ("inference", lambda model: model.predict_on_batch(x)),
            ("training step", lambda model: model.train_on_batch(x, y)),
        ):
            result = _harness.compare(
                lambda run=run, model=ours: run(model),
                lambda run=run, model=reference: run(model),
                repeats=args.repeats,
                warmup=2,
            )
            rows.append(
                {
                    "case": f"{name} {task}",
                    "input": _input(args, args.batch_size),
                    "goal": 1.0,
                    **result,
                }
            )
            _report(rows[-1])
    return rows


def throughput(args):
    """Training throughput in images/second: `--throughput-steps` training
    steps on one synthetic batch that stays on the device, per timed call."""
    x, y = _batch(args, args.throughput_batch_size)
    steps = args.throughput_steps
    images = steps * args.throughput_batch_size

    def train(model):
        for _ in range(steps):
            loss = model.train_on_batch(x, y)
        return float(loss)  # waits for the last step

    rows = []
    for name, ours, reference in _model_pairs(args):
        result = _harness.compare(
            lambda ours=ours: train(ours),
            lambda reference=reference: train(reference),
            args.repeats,
            warmup=1,
        )
        rows.append(
            {
                "case": f"{name} training throughput",
                "input": f"{_input(args, args.throughput_batch_size)}, "
                f"{steps} steps a call",
                "goal": 1.0,
                "ours_images_per_s": images / result["ours_s"],
                "reference_images_per_s": images / result["reference_s"],
                **result,
            }
        )
        _report(rows[-1])
        print(
            f"  {'':<48} {rows[-1]['ours_images_per_s']:.1f} images/s against "
            f"{rows[-1]['reference_images_per_s']:.1f}",
            flush=True,
        )
    return rows


def graphs(args):
    """The operations of the traced inference and training graphs, ours
    against the reference, by type (TensorFlow): where a block would add work
    over keras.applications' plain functional graph, it shows here, without
    the noise of a timing."""
    if keras.config.backend() != "tensorflow":
        print("  (TensorFlow only)")
        return []
    import collections

    import tensorflow as tf

    spec = tf.TensorSpec((args.batch_size, args.image_size, args.image_size, 3))
    rows = []
    for name, ours, reference in _model_pairs(args):
        for training in (False, True):
            counts = []
            for model in (ours, reference):
                function = tf.function(
                    lambda x, model=model, training=training: model(
                        x, training=training
                    )
                )
                graph = function.get_concrete_function(spec).graph
                counts.append(
                    collections.Counter(op.type for op in graph.get_operations())
                )
            types = sorted(set(counts[0]) | set(counts[1]))
            rows.append(
                {
                    "case": f"{name} {'training' if training else 'inference'}",
                    "ours_ops": sum(counts[0].values()),
                    "reference_ops": sum(counts[1].values()),
                    # Op type: (ours, reference), where the counts differ.
                    "differences": {
                        op: (counts[0][op], counts[1][op])
                        for op in types
                        if counts[0][op] != counts[1][op]
                    },
                }
            )
            row = rows[-1]
            print(
                f"  {row['case']:<48} ops {row['ours_ops']} against "
                f"{row['reference_ops']}; differ: {row['differences']}",
                flush=True,
            )
    return rows


def build(args):
    """Construction time of the largest models."""
    # The smoke run builds smaller models through the same code paths.
    variant, depth = ("B0", 50) if args.smoke else ("B7", 152)
    efficientnet_name, resnet_name = f"EfficientNet{variant}", f"ResNet{depth}"
    pairs = {
        efficientnet_name: (
            getattr(efficientnet, efficientnet_name),
            lambda: getattr(keras.applications, efficientnet_name)(weights=None),
        ),
        resnet_name: (
            lambda: resnet.ResNet(depth, keras_applications=True),
            lambda: getattr(keras.applications, resnet_name)(weights=None),
        ),
    }
    rows = []
    for name, (ours, reference) in pairs.items():
        result = _harness.compare(
            ours,
            reference,
            repeats=args.repeats,
            warmup=1,
            setup=keras.backend.clear_session,
        )
        rows.append({"case": f"build {name}", "input": "", "goal": 1.0, **result})
        _report(rows[-1])
    return rows


def lrn(args):
    """Our keras.ops LRN against TensorFlow's fused kernel, both directions."""
    import tensorflow as tf

    batch = 2 if args.smoke else 16
    shapes = {  # (height, width, channels) after AlexNet's conv1 and conv2
        "AlexNet conv1 (55x55x96)": (55, 55, 96),
        "AlexNet conv2 (27x27x256)": (27, 27, 256),
    }
    for channels in (8, 160) if args.smoke else (64, 128, 192, 512, 1024, 2048):
        shapes[f"27x27x{channels}"] = (27, 27, channels)

    @tf.function
    def reference_forward(x):
        return tf.nn.local_response_normalization(x, **LRN_ARGS)

    @tf.function
    def reference_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.nn.local_response_normalization(x, **LRN_ARGS))
        return tape.gradient(loss, x)

    rows = []
    for name, shape in shapes.items():
        layer = layers.LocalResponseNormalization(**LRN_ARGS)
        ours_forward, ours_backward, to_tensor = _lrn_functions(layer)
        x = np.random.default_rng(0).normal(size=(batch, *shape)).astype("float32")
        x_tf, x_ours = tf.constant(x), to_tensor(x)
        np.testing.assert_allclose(
            ours_forward(x_ours), reference_forward(x_tf).numpy(), rtol=1e-4, atol=1e-5
        )
        for direction, ours, reference in (
            ("forward", ours_forward, reference_forward),
            ("backward", ours_backward, reference_backward),
        ):
            result = _harness.compare(
                lambda ours=ours, x=x_ours: ours(x),
                lambda reference=reference, x=x_tf: reference(x).numpy(),
                repeats=args.repeats * 4,
                warmup=2,
            )
            rows.append(
                {
                    "case": f"LRN {direction}, {name}",
                    "input": f"batch {batch}",
                    "goal": 1.5 if keras.config.backend() == "tensorflow" else None,
                    **result,
                }
            )
            _report(rows[-1])
    return rows


def _lrn_functions(layer):
    """(forward, backward, to_tensor) of our layer, compiled for the backend;
    the functions return NumPy arrays, so a call ends when the work does."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def forward(x):
            return layer(x)

        @tf.function
        def backward(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x))
            return tape.gradient(loss, x)

        return (
            (lambda x: forward(x).numpy()),
            (lambda x: backward(x).numpy()),
            tf.constant,
        )
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        forward = jax.jit(layer.__call__)
        backward = jax.jit(jax.grad(lambda x: jnp.sum(layer(x))))
        return (
            lambda x: np.asarray(forward(x)),
            lambda x: np.asarray(backward(x)),
            jnp.asarray,
        )
    import torch

    def forward(x):
        with torch.no_grad():
            return layer(x).numpy()

    def backward(x):
        x = x.detach().requires_grad_(True)
        layer(x).sum().backward()
        return x.grad.numpy()

    return forward, backward, torch.from_numpy


class HookClock:
    """Seconds spent inside the hooks of some callbacks.

    Every hook a callback's class overrides is replaced, on the instance, by
    a timed call of itself: the callbacks' own cost, without the noise of
    the training around it.
    """

    def __init__(self, callbacks):
        self.seconds = 0.0
        for callback in callbacks:
            for name in dir(keras.callbacks.Callback):
                if name.startswith("on_") and getattr(type(callback), name) is not (
                    getattr(keras.callbacks.Callback, name)
                ):
                    setattr(callback, name, self._timed(getattr(callback, name)))

    def _timed(self, hook):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return hook(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


class EpochTimer(keras.callbacks.Callback):
    """Seconds between consecutive epoch starts (it runs last in the list, so
    an epoch holds every other callback's epoch hooks), and the seconds a
    `HookClock` counted in each."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def on_train_begin(self, logs=None):
        self.starts, self.hooks = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.starts.append(time.perf_counter())
        self.hooks.append(self.clock.seconds)

    def on_train_end(self, logs=None):
        self.on_epoch_begin(None)

    @property
    def epochs(self):
        return np.diff(self.starts).tolist()

    @property
    def hook_seconds(self):
        return np.diff(self.hooks).tolist()


def callbacks_overhead(args):
    """Epoch time with each callback at its defaults, against none, and the
    share of it spent in the callbacks' hooks."""
    n_train, n_val, epochs = (64, 32, 3) if args.smoke else (1024, 256, 9)
    # Not counted: the first epochs (compilation, warm-up), the last (its end
    # runs the train-end hooks).
    measured = slice(1, -1) if args.smoke else slice(2, -1)
    rng = np.random.default_rng(0)
    x = rng.random((n_train + n_val, 32, 32, 3), dtype="float32")
    y = rng.integers(0, 10, n_train + n_val)
    train, val = (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])

    # Each callback at its defaults, made for a run's directory.
    single = {
        "CheckpointManager": lambda d: callbacks.CheckpointManager(f"{d}/ckpt"),
        "TensorBoardImageLogger": lambda d: callbacks.TensorBoardImageLogger(
            f"{d}/tb", val
        ),
        "ReduceLROnPlateau": lambda d: callbacks.ReduceLROnPlateau(),
    }
    configurations = {
        "none": lambda d: [],
        **{name: lambda d, make=make: [make(d)] for name, make in single.items()},
        "all three": lambda d: [make(d) for make in single.values()],
    }
    names = list(configurations)
    times = {name: [] for name in names}
    hooks = {name: [] for name in names}
    for repeat in range(args.repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            with tempfile.TemporaryDirectory() as directory:
                keras.backend.clear_session()
                keras.utils.set_random_seed(0)
                model = cifar_resnet.CIFARResNet(20, input_shape=(32, 32, 3))
                model.compile(
                    "adam", "sparse_categorical_crossentropy", metrics=["accuracy"]
                )
                timed = configurations[name](directory)
                timer = EpochTimer(HookClock(timed))
                model.fit(
                    *train,
                    batch_size=64,
                    epochs=epochs,
                    validation_data=val,
                    callbacks=[*timed, timer],
                    verbose=0,
                )
                times[name].append(timer.epochs[measured])
                hooks[name].append(timer.hook_seconds[measured])
                print(
                    f"  {name:<24} epochs {np.round(timer.epochs, 2)} "
                    f"hooks {np.round(timer.hook_seconds, 3)}",
                    flush=True,
                )
    rows = []
    for name in names[1:]:
        rows.append(
            {
                "case": f"epoch with {name}",
                "input": f"CIFAR ResNet-20, {n_train} + {n_val} images, batch 64",
                "goal": 1.03,
                **_overhead(times[name], hooks[name], times["none"]),
                "repeats": args.repeats,
                "warmup": measured.start,
            }
        )
        _report(rows[-1])
        print(f"  {'':<48} hooks {_share(rows[-1])} of the epoch", flush=True)
    return rows


def _overhead(times, hooks, baseline):
    """A callback configuration's cost from its runs' epoch times and hook
    seconds, against the runs without callbacks (lists of runs of epochs).

    Two figures: the ratio of the median epochs (each run's pair in the
    spread), and the mean hook seconds per epoch over the median epoch
    without callbacks. Medians, so that an epoch the machine slowed down
    weighs no more than any other; the mean of the hooks, so that the
    epochs with a confusion matrix count as often as they come.
    """
    pairs = [
        statistics.median(a) / statistics.median(b)
        for a, b in zip(times, baseline, strict=True)
    ]
    hook_share = [
        statistics.mean(h) / statistics.median(b)
        for h, b in zip(hooks, baseline, strict=True)
    ]
    ours = statistics.median([t for run in times for t in run])
    base = statistics.median([t for run in baseline for t in run])
    return {
        "ours_s": ours,
        "reference_s": base,
        "ratio": ours / base,
        "pair_ratio_min": min(pairs),
        "pair_ratio_max": max(pairs),
        "hook_share": statistics.mean([h for run in hooks for h in run]) / base,
        "hook_share_min": min(hook_share),
        "hook_share_max": max(hook_share),
        "times_s": {"ours": times, "reference": baseline},
        "hook_times_s": hooks,
    }


def growth(args):
    """EfficientNet as phi grows: parameters, MACs and build time; beside
    them, the official preset Bk of the same index (its rounded coefficients)
    and the paper's FLOPs for it."""
    phis = range(2) if args.smoke else range(10)
    count_macs = None
    if keras.config.backend() == "tensorflow":
        import flops

        count_macs = flops.count_macs
    rows = []
    for phi in phis:
        scaling = efficientnet.compound_scaling(phi)
        times = []
        for _ in range(1 if args.smoke else 3):
            keras.backend.clear_session()
            start = time.perf_counter()
            model = efficientnet.EfficientNet(phi=phi)
            times.append(time.perf_counter() - start)
        row = {
            "phi": phi,
            "resolution": scaling.resolution,
            "width_coefficient": scaling.width_coefficient,
            "depth_coefficient": scaling.depth_coefficient,
            "blocks": sum(
                isinstance(layer, layers.MBConvBlock) for layer in model.layers
            ),
            "parameters": model.count_params(),
            "macs": count_macs(model) if count_macs else None,
            "build_s": statistics.median(times),
            "build_times_s": times,
            "preset_macs": None,
            "paper_flops_of_b": None,
        }
        if phi < len(PAPER_FLOPS):
            row["paper_flops_of_b"] = PAPER_FLOPS[phi]
            if count_macs:
                keras.backend.clear_session()
                row["preset_macs"] = count_macs(
                    getattr(efficientnet, f"EfficientNetB{phi}")()
                )
        rows.append(row)
        macs = f"{row['macs'] / 1e9:.2f} G MACs" if row["macs"] else ""
        print(
            f"  phi={phi} {row['resolution']}px {row['blocks']} blocks "
            f"{row['parameters']:,} params {macs} build {row['build_s']:.2f} s",
            flush=True,
        )
    return rows


BENCHMARKS = {
    "models": models,
    "throughput": throughput,
    "graphs": graphs,
    "build": build,
    "lrn": lrn,
    "callbacks": callbacks_overhead,
    "growth": growth,
}


def _report(row):
    print(
        f"  {row['case']:<48} ours {row['ours_s'] * 1e3:9.2f} ms  reference "
        f"{row['reference_s'] * 1e3:9.2f} ms  ratio {_harness.spread(row)}",
        flush=True,
    )


def markdown(results):
    """The Benchmarks page's tables for one backend."""
    env = results["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    runs = {}  # (day, settings): the sections measured so
    for name, run in results["measured"].items():
        runs.setdefault((run["date"][:10], run["settings"]), []).append(name)
    measured = "; ".join(
        f"{', '.join(names)} on {day} ({settings})"
        for (day, settings), names in runs.items()
    )
    lines = [
        "<!-- Generated by benchmarks/run.py; do not edit. -->",
        "",
        f"Backend **{env['backend']}** ({versions}), {env['machine']}, "
        f"devices {', '.join(env['devices'])}. Measured: {measured}.",
        "",
    ]
    comparisons = [
        row for name in ("models", "build", "lrn") for row in results.get(name, [])
    ]
    lines += _table(
        ["Case", "Input", "Ours:", "Reference:", "Ratio (pairs min-max)", "Goal"],
        [
            [
                row["case"],
                row["input"],
                _seconds(row["ours_s"]),
                _seconds(row["reference_s"]),
                _harness.spread(row),
                ""
                if row["goal"] is None
                else f"<= {row['goal']:.2f}"
                + (" ✓" if row["ratio"] <= row["goal"] else " ✗"),
            ]
            for row in comparisons
        ],
    )
    lines += _table(
        [
            "Traced graph (TensorFlow)",
            "Operations, ours:",
            "Reference:",
            "Op types whose counts differ (ours, reference)",
        ],
        [
            [
                row["case"],
                f"{row['ours_ops']:,}",
                f"{row['reference_ops']:,}",
                ", ".join(
                    f"{op} ({a}, {b})" for op, (a, b) in row["differences"].items()
                )
                or "none",
            ]
            for row in results.get("graphs", [])
        ],
    )
    lines += _table(
        [
            "Training throughput",
            "Input",
            "Ours:",
            "Reference:",
            "Ratio of times (pairs min-max)",
        ],
        [
            [
                row["case"].removesuffix(" training throughput"),
                row["input"],
                f"{row['ours_images_per_s']:,.1f} images/s",
                f"{row['reference_images_per_s']:,.1f} images/s",
                _harness.spread(row),
            ]
            for row in results.get("throughput", [])
        ],
    )
    # Callbacks are judged on the hook time: the epoch-time ratio is the same
    # question, but its run-to-run spread is wider than the goal.
    lines += _table(
        [
            "Callbacks, at their defaults",
            "Epoch:",
            "Without:",
            "Ratio (pairs min-max)",
            "Hook time per epoch, over the epoch without (runs min-max)",
            "Goal",
        ],
        [
            [
                row["case"].removeprefix("epoch with "),
                _seconds(row["ours_s"]),
                _seconds(row["reference_s"]),
                _harness.spread(row),
                _share(row),
                f"<= {row['goal'] - 1:.0%}"
                + (" ✓" if row["hook_share"] <= row["goal"] - 1 else " ✗"),
            ]
            for row in results.get("callbacks", [])
        ],
    )
    lines += _table(
        [
            "phi:",
            "Resolution:",
            "Width:",
            "Depth:",
            "Blocks:",
            "Parameters:",
            "MACs:",
            "Build:",
            "Preset B{phi} MACs:",
            "Paper B{phi} FLOPs:",
        ],
        [
            [
                row["phi"],
                row["resolution"],
                f"{row['width_coefficient']:.3f}",
                f"{row['depth_coefficient']:.3f}",
                row["blocks"],
                f"{row['parameters']:,}",
                _giga(row["macs"]),
                f"{row['build_s']:.2f} s",
                _giga(row["preset_macs"]),
                f"{row['paper_flops_of_b']} G" if row["paper_flops_of_b"] else "",
            ]
            for row in results.get("growth", [])
        ],
    )
    return "\n".join(lines)


def _table(columns, rows):
    """A Markdown table and the blank line after it, or nothing without rows.
    A column whose heading ends with ":" is right-aligned (the ":" dropped)."""
    if not rows:
        return []
    headings = [column.removesuffix(":") for column in columns]
    rules = ["---:" if column.endswith(":") else "---" for column in columns]
    return [
        _row(headings),
        _row(rules),
        *(_row(row) for row in rows),
        "",
    ]


def _row(cells):
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _giga(value):
    return "" if value is None else f"{value / 1e9:.2f} G"


def _share(row):
    return (
        f"{row['hook_share']:.1%} ({row['hook_share_min']:.1%}-"
        f"{row['hook_share_max']:.1%})"
    )


def _seconds(value):
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS)
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--throughput-batch-size", type=int, default=32)
    parser.add_argument("--throughput-steps", type=int, default=10)
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
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repeat")
    parser.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: write the table again from the JSON file",
    )
    parser.add_argument("--output", type=Path, help="JSON file (default: results/)")
    parser.add_argument("--markdown", type=Path, help="table (default: docs/snippets/)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.batch_size, args.image_size = 1, 2, 32
        args.throughput_batch_size, args.throughput_steps = 2, 2
    args.jit_compile = {"true": True, "false": False}.get(
        args.jit_compile, args.jit_compile
    )
    keras.config.set_dtype_policy(args.dtype_policy)
    backend = keras.config.backend()
    environment = _harness.environment()
    # Results of an accelerator go to their own files, named after it.
    accelerator = environment["accelerator"]
    stem = f"benchmarks_{backend}" + (
        f"_{re.sub('[^a-z0-9]+', '-', accelerator.lower())}" if accelerator else ""
    )
    output = args.output or RESULTS / f"{stem}.json"
    table = args.markdown or SNIPPETS / f"{stem}.md"
    if args.render:
        results = json.loads(output.read_text())
        table.write_text(markdown(results) + "\n")
        print(f"wrote {table}")
        return results
    results = _earlier_results(output, environment, args)
    settings = (
        f"batch {args.batch_size}, {args.image_size}x{args.image_size} images, "
        f"{args.repeats} repeats, {args.dtype_policy}, "
        f"jit_compile={args.jit_compile}" + (" (smoke)" if args.smoke else "")
    )
    for name in args.only:
        print(f"{name}:", flush=True)
        start = time.perf_counter()
        results[name] = BENCHMARKS[name](args)
        results["measured"][name] = {"date": environment["date"], "settings": settings}
        print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    results["environment"] = environment
    # The sections in the order of BENCHMARKS, whichever were measured first.
    results["measured"] = {
        name: results["measured"][name]
        for name in BENCHMARKS
        if name in results["measured"]
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=_plain) + "\n")
    table.write_text(markdown(results) + "\n")
    print(f"wrote {output} and {table}")
    return results


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
