"""What this machine's kernels run, for the tests that force a kernel.

A test that forces a route (one grouped TensorFlow convolution, say) runs it
only where the machine can, and skips elsewhere saying why (STYLE.md rule
23): TensorFlow on an AMD EPYC (AVX2, no AVX-512) runs without oneDNN, and
its Eigen CPU kernels run no grouped convolution. The checks here try the
kernel itself instead of asking the library's route predicates, which are
what the route tests check. `run_tensorflow` starts a process with oneDNN on
or off, to check a predicate on the other kind of machine.
"""

import contextlib
import functools
import os
import subprocess
import sys

import numpy as np
import pytest

# The repository root, for `from tests.machine import ...` in a child process.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.cache
def convolution_error(dtype="float32", groups=1, device=None):
    """Why a TensorFlow convolution of `groups` groups does not train here in
    `dtype`, or None.

    Tried in a compiled function, as a model trains: the convolution followed
    by a bias and ReLU (which TensorFlow's graph optimizer fuses into it),
    then the gradients of its input, kernel and bias. `device`: where it runs
    ("/CPU:0"); None lets TensorFlow place it as it places a test's own calls.
    Eigen's CPU kernels (TensorFlow without oneDNN) run no grouped
    convolution; oneDNN's run no float16 or bfloat16 one without AVX-512.
    """
    import tensorflow as tf

    rng = np.random.default_rng(0)
    with tf.device(device) if device else contextlib.nullcontext():
        x = tf.constant(rng.normal(size=(2, 5, 5, 4)), dtype)
        kernel = tf.Variable(rng.normal(size=(3, 3, 4 // groups, 4)), dtype=dtype)
        bias = tf.Variable(np.zeros(4), dtype=dtype)

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.nn.convolution(x, kernel, padding="SAME")
                y = tf.nn.relu(tf.nn.bias_add(y, bias))
                loss = tf.reduce_sum(y * y)
            return tape.gradient(loss, [x, kernel, bias])

        try:
            [gradient.numpy() for gradient in step(x)]
        except tf.errors.OpError as error:
            return _reason(error)
    return None


def _reason(error):
    """The line of a TensorFlow error that says what failed."""
    lines = [
        line.strip()
        for line in error.message.splitlines()
        if line.strip()
        and not line.startswith(("  ", "\t", "Detected at node"))
        and line.strip() != "Graph execution error:"
    ]
    return f"{type(error).__name__}: {lines[-1] if lines else error.message}"


def skip_without_grouped_convolutions(dtype="float32"):
    """Skips the calling test where one grouped convolution cannot train."""
    error = convolution_error(dtype, groups=2)
    if error is not None:
        pytest.skip(
            f"TensorFlow runs no grouped {dtype} convolution on this machine "
            f"(Eigen's CPU kernels, used without oneDNN, have none): {error}"
        )


def run_tensorflow(code, *args, onednn):
    """Runs `code` with `args` in a new Python process, on TensorFlow with
    oneDNN's CPU kernels on or off (TensorFlow reads TF_ENABLE_ONEDNN_OPTS
    when imported). `from tests.machine import ...` works there. Returns its stdout; fails
    the test with its stderr if it fails."""
    env = {
        **os.environ,
        "TF_ENABLE_ONEDNN_OPTS": "1" if onednn else "0",
        "KERAS_BACKEND": "tensorflow",
        "PYTHONPATH": os.pathsep.join(
            [ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
