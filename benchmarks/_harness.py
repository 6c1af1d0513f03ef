"""Timing side by side: ours against a reference, interleaved, in one process.

Every comparison of `benchmarks/` goes through `compare`: warm-up calls of
each side first (untimed: compilation, caches), then `repeats` pairs in
alternating order (A B, B A, A B, ...), so that a machine that slows down or
speeds up during the run affects both sides alike. The result is the median
time of each side, their ratio (ours / reference: below 1.0 is faster), and
the spread of the per-pair ratios.
"""

import datetime
import gc
import os
import platform
import statistics
import time

import keras


def compare(ours, reference, repeats=5, warmup=1, setup=None):
    """Times two zero-argument callables; returns the comparison as a dict.

    Each callable must return only when its work is done (fetch a result to
    the host: NumPy output, a float loss). `setup`, if given, runs untimed
    before every call (e.g. `keras.backend.clear_session` before a build).
    """
    sides = {"ours": ours, "reference": reference}
    for _ in range(warmup):
        for call in sides.values():
            if setup:
                setup()
            call()
    times = {name: [] for name in sides}
    for repeat in range(repeats):
        order = list(sides) if repeat % 2 == 0 else list(sides)[::-1]
        for name in order:
            if setup:
                setup()
            gc.collect()
            start = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - start)
    pairs = [a / b for a, b in zip(times["ours"], times["reference"], strict=True)]
    return {
        "ours_s": statistics.median(times["ours"]),
        "reference_s": statistics.median(times["reference"]),
        "ratio": statistics.median(times["ours"])
        / statistics.median(times["reference"]),
        "pair_ratio_min": min(pairs),
        "pair_ratio_max": max(pairs),
        "repeats": repeats,
        "warmup": warmup,
        "times_s": times,
    }


def environment():
    """What the figures were measured on: backend, versions, devices, and
    the accelerator's name (None on a CPU)."""
    backend = keras.config.backend()
    versions = {"keras": keras.__version__}
    accelerator = None
    if backend == "jax":
        import jax

        versions["jax"] = jax.__version__
        devices = [str(device) for device in jax.devices()]
        if jax.devices()[0].platform != "cpu":
            accelerator = jax.devices()[0].device_kind
    elif backend == "torch":
        import torch

        versions["torch"] = torch.__version__
        devices = ["cpu"]
        if torch.cuda.is_available():
            accelerator = torch.cuda.get_device_name(0)
            devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    else:
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
        devices = [device.name for device in tf.config.list_logical_devices()]
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            accelerator = details.get("device_name", "GPU")
    try:  # the MAC counts and the LRN reference need it; a GPU run may not
        import tensorflow as tf

        versions.setdefault("tensorflow", tf.__version__)
    except ImportError:
        pass
    return {
        "backend": backend,
        "versions": versions,
        "devices": devices,
        "accelerator": accelerator,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
    }


def spread(result):
    """`ratio (pairs min-max)`, as the tables print a comparison."""
    return (
        f"{result['ratio']:.2f} ({result['pair_ratio_min']:.2f}-"
        f"{result['pair_ratio_max']:.2f})"
    )
