"""The backend markers of conftest.py, run by pytest itself on a file of
tests (pytester), under this process's backend."""

import keras
import pytest

from tests import ROOT

pytestmark = pytest.mark.backend_independent(
    reason="the markers choose by the backend's name: the others are named here"
)
BACKEND = keras.config.backend()
OTHER = "jax" if BACKEND != "jax" else "torch"


@pytest.fixture
def run(pytester, monkeypatch):
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())

    def run(source, independent_pass=None, quick=False, args=()):
        if independent_pass:
            monkeypatch.setenv("KERAS_BLOCKS_INDEPENDENT_PASS", independent_pass)
        else:
            monkeypatch.delenv("KERAS_BLOCKS_INDEPENDENT_PASS", raising=False)
        if quick:
            monkeypatch.setenv("KERAS_BLOCKS_QUICK", "1")
        else:
            monkeypatch.delenv("KERAS_BLOCKS_QUICK", raising=False)
        pytester.makepyfile(test_scoped=source)
        return pytester.runpytest_inprocess("-rs", "-p", "no:cacheprovider", *args)

    return run


SOURCE = f"""
import pytest

def test_unmarked():
    pass

@pytest.mark.backends({BACKEND!r}, reason="here")
def test_here():
    pass

@pytest.mark.backends({OTHER!r}, reason="elsewhere only")
def test_elsewhere():
    pass

@pytest.mark.backend_independent(reason="any")
def test_independent():
    pass

@pytest.mark.backends({OTHER!r}, reason="the function's")
@pytest.mark.parametrize("case", [
    "function",
    pytest.param("here", marks=pytest.mark.backends({BACKEND!r}, reason="p")),
    pytest.param("once", marks=pytest.mark.backend_independent(reason="p")),
])
def test_parameters(case):
    pass
"""


def test_each_test_runs_under_the_backends_it_names(run):
    result = run(SOURCE)
    result.assert_outcomes(passed=5, skipped=2)
    result.stdout.fnmatch_lines(
        [
            f"*test_scoped.py:*: under {OTHER}: elsewhere only",
            f"*test_scoped.py:*: under {OTHER}: the function's",
        ]
    )


def test_independent_tests_run_in_the_pass_named_for_them(run):
    run(SOURCE, independent_pass=BACKEND).assert_outcomes(passed=5, skipped=2)
    result = run(SOURCE, independent_pass=OTHER)
    result.assert_outcomes(passed=3, skipped=2, deselected=2)


@pytest.mark.parametrize(
    "marker, message",
    [
        ('backends("tensorflow")', "needs a reason="),
        ('backend_independent(reason="")', "needs a reason="),
        ('backends("tf", reason="r")', "expected one or more of"),
        ('backends(reason="r")', "expected one or more of"),
        ('slow("tf")', "expected none or some of"),
    ],
)
def test_a_wrong_marker_stops_the_run_naming_the_test(run, marker, message):
    result = run(f"import pytest\n\n@pytest.mark.{marker}\ndef test_x():\n    pass\n")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*test_scoped.py::test_x*{message}*"])


def test_both_markers_are_refused(run):
    result = run(
        "import pytest\n\n"
        '@pytest.mark.backends("torch", reason="a")\n'
        '@pytest.mark.backend_independent(reason="b")\n'
        "def test_x():\n    pass\n"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_x: both*keep one*"])


SLOW = f"""
import pytest

def test_fast():
    pass

@pytest.mark.slow
def test_slow_everywhere():
    pass

@pytest.mark.slow({BACKEND!r})
def test_slow_here():
    pass

@pytest.mark.slow({OTHER!r})
def test_slow_elsewhere():
    pass

@pytest.mark.slow
@pytest.mark.parametrize("case", [
    "function",
    pytest.param("fast_here", marks=pytest.mark.slow({OTHER!r})),
])
def test_parameters(case):
    pass
"""


def test_the_quick_tier_leaves_out_what_is_slow_under_its_backend(run):
    run(SLOW).assert_outcomes(passed=6)
    result = run(SLOW, quick=True, args=["-v"])
    result.assert_outcomes(passed=3, deselected=3)
    passed = [
        line.split("::")[1].split()[0] for line in result.outlines if "PASSED" in line
    ]
    assert passed == ["test_fast", "test_slow_elsewhere", "test_parameters[fast_here]"]
