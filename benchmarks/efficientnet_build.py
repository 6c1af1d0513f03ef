"""Time to build EfficientNet-Bk: keras_blocks against keras.applications.

Both builders run in one process, interleaved (A B, B A, A B, ...), after one
untimed warm-up build of each; each build starts from `clear_session()`. With
`--cold`, every build runs in a fresh process instead (still interleaved; the
imports are not timed): the first build a user waits for, which on JAX is
mostly XLA compiling an initializer for each new weight shape. The script
prints and writes (JSON) the median time of each side, the spread, and the
ratio ours / keras.applications (< 1 means ours builds faster).

    KERAS_BACKEND=tensorflow python -m benchmarks.efficientnet_build --variant b7
    KERAS_BACKEND=jax python -m benchmarks.efficientnet_build --variant b7 --cold
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
VARIANTS = tuple(f"b{index}" for index in range(8))  # efficientnet.PRESETS


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="b7", choices=VARIANTS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="a process per build")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    # --help and a wrong argument answer before Keras loads (seconds).
    parse_args(None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from benchmarks import _harness
from keras_blocks import efficientnet


def builders(variant):
    suffix = variant.upper()
    return {
        "keras_blocks": lambda: getattr(efficientnet, f"EfficientNet{suffix}")(),
        "keras.applications": lambda: getattr(
            keras.applications, f"EfficientNet{suffix}"
        )(weights=None),
    }


def time_build(build):
    seconds, model = _harness.timed(build, setup=_harness.clear_session)
    return seconds, model.count_params()


def time_cold_build(name, variant):
    """Builds once in a fresh Python process; returns (seconds, parameters)."""
    module = "benchmarks.efficientnet_build"
    command = [sys.executable, "-m", module, "--variant", variant, "--child", name]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return tuple(json.loads(done.stdout.strip().splitlines()[-1]))


def summary(times):
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "times_s": times,
    }


def main(argv=None):
    args = parse_args(argv)

    candidates = builders(args.variant)
    if args.child:  # one cold build, for the parent process
        print(json.dumps(time_build(candidates[args.child])))
        return None
    names = list(candidates)
    params = {}
    if args.cold:

        def measure(name):
            return time_cold_build(name, args.variant)
    else:

        def measure(name):
            return time_build(candidates[name])

        for name in names:  # warm-up, untimed
            params[name] = measure(name)[1]

    def measure_and_print(name):
        seconds, params[name] = measure(name)
        print(f"{name:<20} {seconds:7.2f} s", flush=True)
        return seconds

    times = _harness.interleave(names, args.repeats, measure_and_print)

    ours, theirs = times["keras_blocks"], times["keras.applications"]
    pair_ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    result = {
        "benchmark": f"build EfficientNet{args.variant.upper()}"
        + (" (cold: a fresh process per build)" if args.cold else " (warm)"),
        "backend": keras.config.backend(),
        "keras": keras.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "repeats": args.repeats,
        "parameters": params,
        "keras_blocks": summary(ours),
        "keras.applications": summary(theirs),
        "ratio_of_medians": statistics.median(ours) / statistics.median(theirs),
        "pair_ratios": {
            "median": statistics.median(pair_ratios),
            **_spread(pair_ratios),
        },
    }
    print(
        f"{result['benchmark']} on {result['backend']}: ours "
        f"{result['keras_blocks']['median_s']:.2f} s, keras.applications "
        f"{result['keras.applications']['median_s']:.2f} s, ratio "
        f"{result['ratio_of_medians']:.3f} (pairs {min(pair_ratios):.3f}"
        f"-{max(pair_ratios):.3f})"
    )
    output = args.output or RESULTS / (
        f"efficientnet_build_{args.variant}_{result['backend']}"
        f"{'_cold' if args.cold else ''}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _spread(values):
    return {"min": min(values), "max": max(values)}


if __name__ == "__main__":
    main()
