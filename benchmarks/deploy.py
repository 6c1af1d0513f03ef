"""Section `deploy` (TensorFlow): which runtime to deploy on a CPU.

Inference of the CIFAR ResNet-20 (32x32), ResNet-50 and EfficientNet-B0
(224x224) in four runtimes, side by side in one process: Keras'
`predict_on_batch` (the reference), the SavedModel (`tf.saved_model.load`),
LiteRT (float32, builtin operators) and ONNX Runtime (CPU), the last three
through `keras_blocks.deploy.ExportedModel`. Each model is exported once per
format with `keras_blocks.deploy.export_model` into a temporary folder. Two
batches: 1 (the latency of one image) and `--throughput-batch-size` (32:
throughput, images/s). In `--smoke`, a CIFAR ResNet-8 on 8x8 images and
batches 1 and 2.

Every runtime takes a NumPy batch and returns NumPy outputs, so each timed
call includes the copies in and out, as serving does. The four runtimes are
timed in one `_harness.interleave` loop (A B C D, D C B A, ...) on the same
batch, after 2 untimed warm-up calls of each (tracing, tensor allocation);
a timed call runs `calls` inferences back to back, as many as make Keras'
warm-up take about `CALL_S` seconds (1 in `--smoke`), the same for all four.
Each row is one runtime against Keras: the median seconds per inference of
each, their ratio (runtime / Keras: below 1.0 is faster) and the spread of
the per-repeat ratios; also the file size, the export time and the largest
difference of its outputs from Keras' (over the logit scale, on the
warm-up batch).

Threads: Keras and the SavedModel run in this process's TensorFlow, whose
intra-op threads are set when it starts (the default, 0, lets it pick: one
a CPU it may use);
LiteRT and ONNX Runtime get as many threads as the cores this process may
use (`threads=` of `ExportedModel`; LiteRT runs XNNPACK on them, ONNX Runtime
1 inter-op thread). The models are float32 whatever `--dtype-policy` (the
exports compute in float32), compiled with `--jit-compile` (auto: no XLA on
a CPU). On a machine with a GPU, Keras and the SavedModel run there while
LiteRT and ONNX Runtime stay on the CPU: the figures answer the CPU question
on a machine without one.
"""

import functools
import math
import os
import tempfile
import time

import keras
import numpy as np

from benchmarks import _harness
from keras_blocks.deploy import ExportedModel, export_model
from keras_blocks.models import cifar_resnet, get_model

# (name, builder, image size, classes): reference models of keras_blocks.models.
MODELS = (
    ("CIFAR ResNet-20", functools.partial(get_model, "cifar_resnet20"), 32, 10),
    ("ResNet-50", functools.partial(get_model, "resnet50"), 224, 1000),
    ("EfficientNet-B0", functools.partial(get_model, "efficientnet_b0"), 224, 1000),
)
SMOKE_MODELS = (
    ("CIFAR ResNet-8", functools.partial(cifar_resnet.CIFARResNet, 8), 8, 10),
)
# The runtimes, the reference first: name: (format, file name in the folder).
RUNTIMES = {
    "Keras": (None, "model.keras"),
    "SavedModel": ("tf_saved_model", "saved_model"),
    "LiteRT": ("litert", "model.tflite"),
    "ONNX Runtime": ("onnx", "model.onnx"),
}
REFERENCE = "Keras"
WARMUP = 2
# Seconds a timed call of Keras should take (its inferences in a row): a
# single inference of a small model at batch 1 is a millisecond, too short to
# time alone.
CALL_S = 0.5


def measure(args):
    """Latency at batch 1 and throughput at `--throughput-batch-size` of each
    model in the four runtimes, as ratios to Keras' `predict_on_batch`."""
    if keras.config.backend() != "tensorflow":
        print("  (TensorFlow only: LiteRT exports from TensorFlow alone)")
        return []
    threads = cores()
    rows = []
    for name, builder, size, classes in SMOKE_MODELS if args.smoke else MODELS:
        with tempfile.TemporaryDirectory(prefix="deploy-benchmark-") as folder:
            runtimes, files = _runtimes(args, builder, size, classes, folder, threads)
            for batch_size in (1, args.throughput_batch_size):
                rows += _compare(args, name, size, batch_size, runtimes, files)
            del runtimes  # their sessions, before the next model
        _harness.clear_session()
    return rows


def settings(args):
    """This section's settings, as the table says when it was measured."""
    return (
        f"batch 1 and {args.throughput_batch_size}, {args.repeats} repeats, "
        f"float32, jit_compile={args.jit_compile}, LiteRT and ONNX Runtime on "
        f"{cores()} threads, TensorFlow on {_tensorflow_threads()}"
    )


def cores():
    """The cores this process may run on: LiteRT's and ONNX Runtime's threads."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _tensorflow_threads():
    import tensorflow as tf

    intra = tf.config.threading.get_intra_op_parallelism_threads()
    # 0: TensorFlow picks, one thread a CPU it may use.
    return f"{intra} intra-op threads" if intra else "its default intra-op threads"


def _runtimes(args, builder, size, classes, folder, threads):
    """The model in each runtime (`{name: call}`, NumPy in and out) and what
    its file is (`{name: {"size_bytes", "export_s"}}`)."""
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        keras.utils.set_random_seed(0)
        model = builder(
            input_shape=(size, size, 3), classes=classes, classifier_activation=None
        )
    finally:
        keras.config.set_dtype_policy(policy)
    model.compile(jit_compile=args.jit_compile)
    runtimes = {REFERENCE: model.predict_on_batch}
    files = {}
    for name, (format, file_name) in RUNTIMES.items():
        path = os.path.join(folder, file_name)
        start = time.perf_counter()
        if format is None:
            model.save(path)
        else:
            export_model(model, path, format)
            runtimes[name] = ExportedModel(path, threads=threads)
        files[name] = {
            # A .keras file, or what ExportedModel found on disk.
            "size_bytes": (
                os.path.getsize(path) if format is None else runtimes[name].size_bytes
            ),
            "export_s": time.perf_counter() - start,
        }
        print(
            f"  {model.name} {name}: {files[name]['size_bytes'] / 1e6:.1f} MB, "
            f"written in {files[name]['export_s']:.1f} s",
            flush=True,
        )
    return runtimes, files


def _compare(args, name, size, batch_size, runtimes, files):
    """The rows of one model and batch: each runtime against Keras, timed in
    one interleaved loop."""
    shape = (batch_size, size, size, 3)
    x = np.random.default_rng(0).uniform(0, 1, shape).astype("float32")
    outputs, keras_s = {}, None
    for _ in range(WARMUP):
        for runtime, call in runtimes.items():
            seconds, outputs[runtime] = _harness.timed(lambda call=call: call(x))
            if runtime == REFERENCE:
                keras_s = seconds  # the last: warm
    calls = 1 if args.smoke else max(1, math.ceil(CALL_S / keras_s))

    def timed_call(runtime):
        call = runtimes[runtime]

        def run():
            for _ in range(calls):
                output = call(x)
            return output

        return _harness.timed(run)[0] / calls  # seconds per inference

    times = _harness.interleave(list(runtimes), args.repeats, timed_call)
    reference = outputs[REFERENCE]
    scale = max(1.0, float(np.max(np.abs(reference))))
    rows = []
    for runtime in runtimes:
        if runtime == REFERENCE:
            continue
        ours_s = float(np.median(times[runtime]))
        reference_s = float(np.median(times[REFERENCE]))
        pairs = [a / b for a, b in zip(times[runtime], times[REFERENCE], strict=True)]
        rows.append(
            {
                "case": f"{name} batch {batch_size}, {runtime}",
                "model": name,
                "runtime": runtime,
                "format": RUNTIMES[runtime][0],
                "batch_size": batch_size,
                "input": f"{batch_size}x{size}x{size}x3, float32",
                "calls": calls,
                "goal": None,
                "ours_s": ours_s,
                "reference_s": reference_s,
                "ratio": ours_s / reference_s,
                "pair_ratio_min": min(pairs),
                "pair_ratio_max": max(pairs),
                "repeats": args.repeats,
                "warmup": WARMUP,
                "times_s": {"ours": times[runtime], "reference": times[REFERENCE]},
                "ours_images_per_s": batch_size / ours_s,
                "reference_images_per_s": batch_size / reference_s,
                "max_difference": float(
                    np.max(np.abs(outputs[runtime] - reference)) / scale
                ),
                "size_bytes": files[runtime]["size_bytes"],
                "export_s": files[runtime]["export_s"],
                "reference_size_bytes": files[REFERENCE]["size_bytes"],
                "reference_save_s": files[REFERENCE]["export_s"],
            }
        )
        _harness.report(rows[-1])
    return rows
