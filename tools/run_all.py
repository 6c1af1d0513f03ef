"""Lint, the docs site, then the test suite under each backend: what `.ci/run` runs.

python -m tools.run_all                        # ruff, site, then TF, JAX and PyTorch
python -m tools.run_all --backends jax -- -k DropPath

pytest runs as `python -m pytest` from the repository root, so that the tests
import the reference models, benchmarks and tools as packages
(`from examples import resnet`).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax", "torch")
CLOSING = re.compile(r"^=+ .*(passed|failed|error|no tests ran).* in [\d.]+s")
# The JAX run's XLA flags: LLVM's lowest optimization level, none of its
# expensive passes (see main).
FAST_COMPILE_XLA_FLAGS = (
    "--xla_backend_optimization_level=0",
    "--xla_llvm_disable_expensive_passes=true",
)


def run(command, env=None):
    """Runs `command`, streaming its output; returns (exit code, output lines)."""
    print("$", " ".join(command), flush=True)
    lines = []
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as process:
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip())
    return process.returncode, lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=BACKENDS, choices=BACKENDS)
    parser.add_argument("--workers", default="2", help="pytest-xdist workers")
    parser.add_argument("--no-lint", action="store_true")
    parser.add_argument(
        "--no-site",
        action="store_true",
        help="skip the docs site's build and browser check (tools/check_site.py)",
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    args = parser.parse_args(argv)

    failed = []
    if not args.no_lint:
        for command in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
            returncode, _ = run([sys.executable, "-m", *command])
            if returncode:
                failed.append(" ".join(command))
    if not args.no_site:
        # mkdocs build --strict, the API reference's coverage, every page in
        # headless Chromium.
        returncode, _ = run([sys.executable, "-m", "tools.check_site"])
        if returncode:
            failed.append("tools/check_site.py")

    # Each pytest-xdist worker gets its share of the cores: oversubscribed math
    # libraries thrash (one torch training step took 25x longer with two
    # threads per worker on two cores).
    workers = int(args.workers) if args.workers.isdigit() else 1
    threads = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    summary = []
    jax_cache = tempfile.TemporaryDirectory(prefix="keras_blocks_jax_cache_")
    for backend in args.backends:
        env = {
            **os.environ,
            "KERAS_BACKEND": backend,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "OMP_NUM_THREADS": threads,
            "TF_NUM_INTRAOP_THREADS": threads,
        }
        if backend == "jax":
            # JAX compiles every new computation; a persistent cache shared by
            # the workers lets a model built or trained again (a resumed run, a
            # reloaded file) reuse the executables: about 15% less JAX time.
            env.update(
                JAX_COMPILATION_CACHE_DIR=jax_cache.name,
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
            )
            # The tests' inputs are tiny: most of XLA's time goes into
            # compiling, much of it into LLVM optimizing machine code that
            # then runs for milliseconds. tests/test_mb_conv_block.py under
            # JAX, alternated on a loaded machine: 207 s and 270 s without
            # these flags, 155 s with them.
            env["XLA_FLAGS"] = " ".join(
                [os.environ.get("XLA_FLAGS", ""), *FAST_COMPILE_XLA_FLAGS]
            ).strip()
        start = time.perf_counter()
        returncode, lines = run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-n",
                args.workers,
                # An idle worker takes tests queued for the other: the long
                # tests left at the end of a run no longer wait on one worker.
                "--dist",
                "worksteal",
                "-p",
                "no:cacheprovider",
                "--doctest-modules",
                # The slowest tests in every CI report: where time goes.
                "--durations=25",
                "keras_blocks",
                "tests",
                *args.pytest_args,
            ],
            env=env,
        )
        # pytest's closing line; TensorFlow may log after it.
        closings = [line for line in lines if CLOSING.search(line)]
        closing = closings[-1].strip("= ") if closings else "no pytest summary"
        summary.append((backend, closing, time.perf_counter() - start))
        if returncode:
            failed.append(f"pytest ({backend})")

    jax_cache.cleanup()
    print("\nSummary")
    for backend, closing, seconds in summary:
        print(f"  {backend:<10} {closing}  [{seconds:.0f} s wall]")
    counts = [re.search(r"(\d+) passed", closing) for _, closing, _ in summary]
    failures = [re.search(r"(\d+) failed", closing) for _, closing, _ in summary]
    passed = sum(int(m.group(1)) for m in counts if m)
    failed_tests = sum(int(m.group(1)) for m in failures if m)
    if failed:
        print("Failed:", ", ".join(failed))
    print(f"{passed} passed, {failed_tests} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
