"""Lint, the docs site, then the test suite under each backend: what `.ci/run` runs.

python -m tools.run_all                        # ruff, site, then TF, JAX and PyTorch
python -m tools.run_all --quick                # the fast tests of all three
python -m tools.run_all --backends jax -- tests/layers -k DropPath

Each test declares the backends its claim depends on (tests/conftest.py); a
backend-independent one runs in one pass only, the first of
INDEPENDENT_PASS_ORDER that runs (PyTorch's pass is the fastest). Each
backend's wall time, its counts per folder of tests/ and its 25 slowest tests
go to build/test-times.md, and every test's time to build/test-times-BACKEND.xml.

pytest runs as `python -m pytest` from the repository root, so that the tests
import the examples' commands, benchmarks and tools as packages
(`from examples import train`).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax", "torch")
INDEPENDENT_PASS_ORDER = ("torch", "tensorflow", "jax")
TIMES = ROOT / "build" / "test-times.md"
CLOSING = re.compile(r"^=+ .*(passed|failed|error|no tests ran).* in [\d.]+s")
# The JAX run's XLA flags: LLVM's lowest optimization level, none of its
# expensive passes (see main).
FAST_COMPILE_XLA_FLAGS = (
    "--xla_backend_optimization_level=0",
    "--xla_llvm_disable_expensive_passes=true",
    "--xla_cpu_use_fusion_emitters=false",
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
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the edit-test loop: ruff, then the tests not marked slow (no site)",
    )
    parser.add_argument(
        "--times", type=Path, default=TIMES, help=f"the timing report (default {TIMES})"
    )
    parser.add_argument(
        "pytest_args",
        nargs="*",
        help="extra pytest arguments; paths replace keras_blocks and tests",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.no_site = True  # ruff takes a second or two: it stays

    failed = []
    steps = []  # (step, seconds) before the tests
    if not args.no_lint:
        start = time.perf_counter()
        for command in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
            returncode, _ = run([sys.executable, "-m", *command])
            if returncode:
                failed.append(" ".join(command))
        steps.append(("ruff", time.perf_counter() - start))
    if not args.no_site:
        # mkdocs build --strict, the API reference's coverage, every page in
        # headless Chromium.
        start = time.perf_counter()
        returncode, _ = run([sys.executable, "-m", "tools.check_site"])
        if returncode:
            failed.append("tools/check_site.py")
        steps.append(("site", time.perf_counter() - start))

    # Each pytest-xdist worker gets its share of the cores: oversubscribed math
    # libraries thrash (one torch training step took 25x longer with two
    # threads per worker on two cores).
    workers = int(args.workers) if args.workers.isdigit() else 1
    threads = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    summary, reports = [], []
    independent_pass = next(b for b in INDEPENDENT_PASS_ORDER if b in args.backends)
    # Paths given replace the default ones.
    paths = [
        a
        for a in args.pytest_args
        if not a.startswith("-") and (ROOT / a.split("::")[0]).exists()
    ]
    jax_cache = tempfile.TemporaryDirectory(prefix="keras_blocks_jax_cache_")
    for backend in args.backends:
        # Every test's time, kept beside the report for a closer look.
        junit = args.times.with_name(f"test-times-{backend}.xml")
        junit.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "KERAS_BACKEND": backend,
            "KERAS_BLOCKS_INDEPENDENT_PASS": independent_pass,
            # The quick tier: no `slow` test (tests/conftest.py), fewer examples.
            **(
                {"KERAS_BLOCKS_QUICK": "1", "HYPOTHESIS_PROFILE": "quick"}
                if args.quick
                else {}
            ),
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
            # then runs for milliseconds. tests/layers/test_mb_conv_block.py under
            # JAX, alternated on a loaded machine: 207 s and 270 s without
            # these flags, 155 s with the first two; 95 s with those two and
            # 59 s with the third too (XLA's older elemental emitters compile
            # a small computation in about 60% of the fusion emitters' time).
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
                f"--junitxml={junit}",
                *([] if paths else ["keras_blocks", "tests"]),
                *args.pytest_args,
            ],
            env=env,
        )
        # pytest's closing line; TensorFlow may log after it.
        closings = [line for line in lines if CLOSING.search(line)]
        closing = closings[-1].strip("= ") if closings else "no pytest summary"
        seconds = time.perf_counter() - start
        summary.append((backend, closing, seconds))
        reports.append((backend, closing, seconds, read_junit(junit)))
        if returncode:
            failed.append(f"pytest ({backend})")

    jax_cache.cleanup()
    write_times(args.times, steps, reports, quick=args.quick)
    print("\nSummary")
    for step, seconds in steps:
        print(f"  {step:<10} [{seconds:.0f} s wall]")
    for backend, closing, seconds in summary:
        print(f"  {backend:<10} {closing}  [{seconds:.0f} s wall]")
    counts = [re.search(r"(\d+) passed", closing) for _, closing, _ in summary]
    failures = [re.search(r"(\d+) failed", closing) for _, closing, _ in summary]
    passed = sum(int(m.group(1)) for m in counts if m)
    failed_tests = sum(int(m.group(1)) for m in failures if m)
    if failed:
        print("Failed:", ", ".join(failed))
    print(f"{passed} passed, {failed_tests} failed")
    print(f"Times: {args.times}")
    return 1 if failed else 0


def read_junit(path):
    """[(test id, outcome, seconds)] from pytest's JUnit XML, or []."""
    if not path.exists():
        return []
    tests = []
    for case in ElementTree.parse(path).iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "skipped"
        # classname is the module's dotted path ("tests.layers.test_drop_path")
        module = case.get("classname", "")
        tests.append(
            (f"{module}::{case.get('name')}", outcome, float(case.get("time", 0)))
        )
    return tests


def concern(test_id):
    """The folder of tests/ (or "doctests") a test id belongs to."""
    parts = test_id.split("::")[0].split(".")
    return parts[1] if parts[0] == "tests" and len(parts) > 2 else "doctests"


def write_times(path, steps, reports, quick):
    """The lint's and site's wall times, each pass's, its tests per folder and
    its 25 slowest, as Markdown."""
    lines = [f"# Test times{' (quick tier)' if quick else ''}", ""]
    lines += ["| Step | Wall time | pytest's summary |", "|---|---|---|"]
    for step, seconds in steps:
        lines.append(f"| {step} | {seconds:.0f} s | |")
    for backend, closing, seconds, _ in reports:
        lines.append(f"| {backend} | {seconds:.0f} s | {closing} |")
    folders = sorted({concern(t) for *_, tests in reports for t, _, _ in tests})
    lines += ["", "Tests run (not skipped) per folder, and their summed time:", ""]
    lines.append("| Folder | " + " | ".join(b for b, *_ in reports) + " |")
    lines.append("|---" * (len(reports) + 1) + "|")
    for folder in folders:
        cells = []
        for *_, tests in reports:
            ran = [s for t, o, s in tests if concern(t) == folder and o != "skipped"]
            cells.append(f"{len(ran)} in {sum(ran):.0f} s")
        lines.append(f"| {folder} | " + " | ".join(cells) + " |")
    for backend, _, _, tests in reports:
        lines += ["", f"## {backend}: the 25 slowest", ""]
        for test_id, outcome, seconds in sorted(tests, key=lambda t: -t[2])[:25]:
            lines.append(f"- {seconds:.1f} s {test_id} ({outcome})")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
