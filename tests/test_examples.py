"""The demo in examples/ runs end to end on every backend (a short run)."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sklearn")  # the examples extra

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_demo_learns_digits(capsys):
    accuracy = load_example("train").main(["--epochs", "3"])
    assert accuracy > 0.5  # chance is 0.1; the full demo reaches ~0.99
    assert "test accuracy" in capsys.readouterr().out
