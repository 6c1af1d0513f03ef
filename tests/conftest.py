"""Test set-up: quiet TensorFlow, and Hypothesis settings fit for TF's slow first calls."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hypothesis
import keras
import pytest

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
hypothesis.settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Each test starts with the default dtype policy and a fixed seed."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
