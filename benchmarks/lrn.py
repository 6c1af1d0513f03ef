"""Section `lrn`: `LocalResponseNormalization` (keras.ops) against TensorFlow's
fused `tf.nn.local_response_normalization`, forward and backward."""

import keras
import numpy as np

from benchmarks import _harness
from keras_blocks import layers

LRN_ARGS = {"depth_radius": 2, "bias": 2.0, "alpha": 1e-4, "beta": 0.75}


def measure(args):
    """Our keras.ops LRN against TensorFlow's fused kernel, both directions."""
    import tensorflow as tf

    batch = 2 if args.smoke else 16
    shapes = {  # (height, width, channels) after AlexNet's conv1 and conv2
        "AlexNet conv1 (55x55x96)": (55, 55, 96),
        "AlexNet conv2 (27x27x256)": (27, 27, 256),
    }
    for channels in (8, 160) if args.smoke else (64, 128, 192, 512, 1024, 2048):
        shapes[f"27x27x{channels}"] = (27, 27, channels)

    @tf.function
    def reference_forward(x):
        return tf.nn.local_response_normalization(x, **LRN_ARGS)

    @tf.function
    def reference_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.nn.local_response_normalization(x, **LRN_ARGS))
        return tape.gradient(loss, x)

    rows = []
    for name, shape in shapes.items():
        layer = layers.LocalResponseNormalization(**LRN_ARGS)
        ours_forward, ours_backward, to_tensor = lrn_functions(layer)
        x = np.random.default_rng(0).normal(size=(batch, *shape)).astype("float32")
        x_tf, x_ours = tf.constant(x), to_tensor(x)
        np.testing.assert_allclose(
            ours_forward(x_ours), reference_forward(x_tf).numpy(), rtol=1e-4, atol=1e-5
        )
        for direction, ours, reference in (
            ("forward", ours_forward, reference_forward),
            ("backward", ours_backward, reference_backward),
        ):
            result = _harness.compare(
                lambda ours=ours, x=x_ours: ours(x),
                lambda reference=reference, x=x_tf: reference(x).numpy(),
                repeats=args.repeats * 4,
                warmup=2,
            )
            rows.append(
                {
                    "case": f"LRN {direction}, {name}",
                    "input": f"batch {batch}",
                    "goal": 1.5 if keras.config.backend() == "tensorflow" else None,
                    **result,
                }
            )
            _harness.report(rows[-1])
    return rows


def lrn_functions(layer):
    """(forward, backward, to_tensor) of our layer, compiled for the backend;
    the functions return NumPy arrays, so a call ends when the work does."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def forward(x):
            return layer(x)

        @tf.function
        def backward(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x))
            return tape.gradient(loss, x)

        return (
            (lambda x: forward(x).numpy()),
            (lambda x: backward(x).numpy()),
            tf.constant,
        )
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        forward = jax.jit(layer.__call__)
        backward = jax.jit(jax.grad(lambda x: jnp.sum(layer(x))))
        return (
            lambda x: np.asarray(forward(x)),
            lambda x: np.asarray(backward(x)),
            jnp.asarray,
        )
    import torch

    def forward(x):
        with torch.no_grad():
            return layer(x).numpy()

    def backward(x):
        x = x.detach().requires_grad_(True)
        layer(x).sum().backward()
        return x.grad.numpy()

    return forward, backward, torch.from_numpy
