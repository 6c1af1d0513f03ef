"""The demo in examples/ runs end to end on every backend (a short run)."""

import pytest
from scripts import load_script

pytest.importorskip("sklearn")  # the examples extra


def test_train_demo_learns_digits(capsys):
    accuracy = load_script("examples", "train").main(["--epochs", "3"])
    assert accuracy > 0.5  # chance is 0.1; the full demo reaches ~0.99
    assert "test accuracy" in capsys.readouterr().out
