"""Test set-up: the backends each test runs under, quiet TensorFlow, and
Hypothesis settings fit for TF's slow first calls.

A test declares the backends its claim depends on, once, with why:

    @pytest.mark.backends("tensorflow", reason="LiteRT exports from TensorFlow")
    def test_litert_file_runs(): ...

    @pytest.mark.backend_independent(reason="argument checks, before Keras")
    def test_bad_arguments_exit_2(): ...

- Unmarked: the claim depends on the backend (layer and model numerics,
  state, RNG): it runs under every backend.
- `backends(*names, reason=...)`: under those backends only; elsewhere it is
  skipped with its reason. The closest marker wins (a parameter's over its
  function's over its module's `pytestmark`).
- `backend_independent(reason=...)`: the result is the same under any
  backend, so it runs once. A plain `pytest` runs it under whatever backend
  it runs; `tools/run_all.py`, which runs a pass per backend, names the one
  pass that runs it in KERAS_BLOCKS_INDEPENDENT_PASS, and the others
  deselect it.

`slow` marks what the quick tier (`python -m tools.run_all --quick`, which
sets KERAS_BLOCKS_QUICK) leaves out; CI runs everything. `slow("jax")` is
slow under the backends it names only (JAX compiles each new computation:
a model that takes a second under PyTorch can take thirty under JAX).

A marker written wrong (no reason, an unknown backend, both scope markers)
makes its test an error (at setup) with a message naming the marker, under every backend and
in every tier (pytest-xdist's workers collect, where an error raised in
collection would only show as an internal error). The summary says how
many tests each rule deselected (pytest-xdist's own counts leave them out).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hypothesis
import keras
import pytest

BACKENDS = ("tensorflow", "jax", "torch")
INDEPENDENT_PASS = "KERAS_BLOCKS_INDEPENDENT_PASS"
QUICK = "KERAS_BLOCKS_QUICK"
MARKER_ERROR = pytest.StashKey[str]()
DESELECTED = pytest.StashKey[dict]()


class MarkerError(Exception):
    """A backend or slow marker written wrong."""


_COMMON = dict(
    deadline=None,
    max_examples=10,
    suppress_health_check=[
        hypothesis.HealthCheck.too_slow,
        hypothesis.HealthCheck.data_too_large,
    ],
)
hypothesis.settings.register_profile("dev", **_COMMON)
# CI replays the same examples on every run and under every backend, so that a
# failure reproduces; locally each run explores new ones.
hypothesis.settings.register_profile(
    "ci", derandomize=True, print_blob=True, database=None, **_COMMON
)
# The quick tier (`tools/run_all.py --quick`): the same examples as CI's,
# fewer of them.
hypothesis.settings.register_profile(
    "quick", parent=hypothesis.settings.get_profile("ci"), max_examples=3
)
hypothesis.settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "backends(*names, reason): the backends the test's claim depends on; "
        "it is skipped under the others",
    )
    config.addinivalue_line(
        "markers",
        "backend_independent(reason): the test's result is the same under any "
        "backend; tools/run_all.py runs it in one pass",
    )
    config.addinivalue_line(
        "markers",
        "slow(*names): left out of the quick tier (under the backends named, "
        "or all); CI runs it",
    )


def backend_scope(item):
    """The backends `item` runs under: a tuple of names, "independent", or
    None (unmarked: every backend). Raises MarkerError on a marker without
    a reason or with an unknown backend."""
    scoped, independent = _closest(item, "backends", "backend_independent")
    for marker in filter(None, (scoped, independent)):
        if not marker.kwargs.get("reason"):
            why = (
                "does not depend on the backend"
                if marker.name == "backend_independent"
                else "depends on those backends"
            )
            raise MarkerError(
                f"{item.nodeid}: @pytest.mark.{marker.name} needs a reason= "
                f"saying why the claim {why} (a reason must be passed by "
                "keyword: a positional string is read as a backend's name)"
            )
    if scoped and independent:
        raise MarkerError(
            f"{item.nodeid}: both @pytest.mark.backends and "
            "@pytest.mark.backend_independent; keep one"
        )
    if independent:
        return "independent"
    if scoped is None:
        return None
    unknown = [name for name in scoped.args if name not in BACKENDS]
    if unknown or not scoped.args:
        raise MarkerError(
            f"{item.nodeid}: @pytest.mark.backends{scoped.args}: expected one "
            f"or more of {BACKENDS}"
        )
    return scoped.args


def _closest(item, *names):
    """The closest marker of each name: a parameter's marks, where it has any
    of `names`, replace its function's and module's (pytest puts a
    function's own decorators before its parameter's marks)."""
    callspec = getattr(item, "callspec", None)
    marks = [m for m in getattr(callspec, "marks", ()) if m.name in names]
    if marks:
        return [next((m for m in marks if m.name == n), None) for n in names]
    return [item.get_closest_marker(name) for name in names]


def is_slow(item, backend):
    """Whether the quick tier leaves `item` out under `backend`."""
    (marker,) = _closest(item, "slow")
    if marker is None:
        return False
    unknown = [name for name in marker.args if name not in BACKENDS]
    if unknown:
        raise MarkerError(
            f"{item.nodeid}: @pytest.mark.slow{marker.args}: expected none or "
            f"some of {BACKENDS}"
        )
    return not marker.args or backend in marker.args


# The examples in keras_blocks.models' docstrings show its tables and build
# models by name: the same under any backend, whose numerics tests/models
# checks per backend (they took 67 s of the JAX pass's workers, 16 of TF's).
REGISTRY_DOCTESTS = pytest.mark.backend_independent(
    reason="keras_blocks.models' examples: the registry's tables and building"
)


def pytest_collection_modifyitems(config, items):
    backend = keras.config.backend()
    independent_pass = os.environ.get(INDEPENDENT_PASS)
    quick = bool(os.environ.get(QUICK))
    kept, slow, independent = [], [], []
    for item in items:
        if isinstance(item, pytest.DoctestItem) and item.nodeid.startswith(
            "keras_blocks/models/"
        ):
            item.add_marker(REGISTRY_DOCTESTS)
        try:
            scope, item_is_slow = backend_scope(item), is_slow(item, backend)
        except MarkerError as error:
            # Kept in every pass and tier: it fails, naming its marker.
            item.stash[MARKER_ERROR] = str(error)
            kept.append(item)
            continue
        if item_is_slow and quick:
            slow.append(item)
            continue
        if scope == "independent":
            if independent_pass and independent_pass != backend:
                independent.append(item)
                continue
        elif scope is not None and backend not in scope:
            reason = _closest(item, "backends")[0].kwargs["reason"]
            item.add_marker(
                pytest.mark.skip(reason=f"under {' and '.join(scope)}: {reason}")
            )
        kept.append(item)
    deselected = {
        "backend": backend,
        "slow": len(slow),
        "independent": len(independent),
        "independent_pass": independent_pass,
    }
    config.stash[DESELECTED] = deselected
    if hasattr(config, "workeroutput"):  # a pytest-xdist worker
        config.workeroutput["keras_blocks_deselected"] = deselected
    if slow or independent:
        config.hook.pytest_deselected(items=slow + independent)
        items[:] = kept


def pytest_runtest_setup(item):
    error = item.stash.get(MARKER_ERROR, None)
    if error:
        pytest.fail(error, pytrace=False)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist's controller: a worker's deselection counts (every
    worker collects the same tests)."""
    deselected = getattr(node, "workeroutput", {}).get("keras_blocks_deselected")
    if deselected:
        node.config.stash[DESELECTED] = deselected


def pytest_terminal_summary(terminalreporter, config):
    deselected = config.stash.get(DESELECTED, None)
    if not deselected or not (deselected["slow"] or deselected["independent"]):
        return
    parts = []
    if deselected["slow"]:
        parts.append(f"{deselected['slow']} slow under {deselected['backend']}")
    if deselected["independent"]:
        parts.append(
            f"{deselected['independent']} backend-independent (they run in the "
            f"{deselected['independent_pass']} pass)"
        )
    terminalreporter.write_line("deselected by tests/conftest.py: " + ", ".join(parts))


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Each test starts with the default dtype policy and a fixed seed."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
