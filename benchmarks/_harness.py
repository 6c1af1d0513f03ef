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
    """What the figures were measured on."""
    backend = keras.config.backend()
    versions = {"keras": keras.__version__}
    if backend == "jax":
        import jax

        versions["jax"] = jax.__version__
        devices = [str(device) for device in jax.devices()]
    elif backend == "torch":
        import torch

        versions["torch"] = torch.__version__
        devices = ["cuda" if torch.cuda.is_available() else "cpu"]
    else:
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
        devices = [device.name for device in tf.config.list_logical_devices()]
    import tensorflow as tf

    versions.setdefault("tensorflow", tf.__version__)
    return {
        "backend": backend,
        "versions": versions,
        "devices": devices,
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
