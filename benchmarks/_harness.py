"""Timing side by side: ours against a reference, interleaved, in one process.

Every timing of `benchmarks/` goes through one loop, `interleave`: the cases
in alternating order (A B, B A, A B, ...), so that a machine that slows down
or speeds up during the run affects them alike. `compare` times two callables
with it: warm-up calls of each side first (untimed: compilation, caches), then
`repeats` pairs; the result is the median time of each side, their ratio
(ours / reference: below 1.0 is faster), and the spread of the per-pair
ratios.
"""

import datetime
import gc
import os
import platform
import statistics
import time

import keras


def interleave(names, repeats, measure):
    """The one timing loop: `measure(name)` for each name, `repeats` times, in
    alternating order (A B, B A, A B, ...); returns `{name: [results]}`."""
    results = {name: [] for name in names}
    for repeat in range(repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            results[name].append(measure(name))
    return results


def timed(call, setup=None):
    """(seconds, result) of one call of `call`, after `setup` and a garbage
    collection (both untimed)."""
    if setup:
        setup()
    gc.collect()
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def compare(ours, reference, repeats=5, warmup=1, setup=None):
    """Times two zero-argument callables; returns the comparison as a dict.

    Each callable must return only when its work is done (fetch a result to
    the host: NumPy output, a float loss). `setup`, if given, runs untimed
    before every call (e.g. `clear_session` before a build).
    """
    sides = {"ours": ours, "reference": reference}
    for _ in range(warmup):
        for call in sides.values():
            if setup:
                setup()
            call()
    times = interleave(list(sides), repeats, lambda name: timed(sides[name], setup)[0])
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


def clear_session():
    """`keras.backend.clear_session()`, keeping the global dtype policy.

    Keras' clear_session resets the policy to float32: every section that
    cleared the session before building ran in float32 whatever
    `--dtype-policy` said (seen in a GPU run's tables).
    """
    policy = keras.config.dtype_policy()
    keras.backend.clear_session()
    keras.config.set_dtype_policy(policy)


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


def report(row):
    """Prints one comparison as the sections do while they measure."""
    print(
        f"  {row['case']:<48} ours {row['ours_s'] * 1e3:9.2f} ms  reference "
        f"{row['reference_s'] * 1e3:9.2f} ms  ratio {spread(row)}",
        flush=True,
    )
