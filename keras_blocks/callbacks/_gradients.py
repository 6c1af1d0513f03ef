"""Gradients of a model's compiled loss, on each backend that has them."""

import keras

GRADIENT_BACKENDS = ("tensorflow", "jax", "torch")


def loss_gradient_function(model):
    """A function `(x, y) -> gradients` of the model's compiled loss.

    Gradients for `model.trainable_variables`, as NumPy arrays (None where the
    loss does not depend on a variable), with the model in inference mode so
    that nothing is updated (batch statistics, seed generators). Built once
    per training, so that JAX compiles it once.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def loss(trainable, non_trainable, metrics, x, y):
            value, _ = model.compute_loss_and_updates(
                trainable, non_trainable, metrics, x, y, None, training=False
            )
            return value

        gradient = jax.jit(jax.grad(loss))

        def gradients(x, y):
            states = (
                model.trainable_variables,
                model.non_trainable_variables,
                model.metrics_variables,
            )
            return gradient(*([v.value for v in state] for state in states), x, y)

    elif backend == "tensorflow":
        import tensorflow as tf

        def gradients(x, y):
            with tf.GradientTape() as tape:
                y_pred = model(x, training=False)
                value = model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
            return tape.gradient(value, model.trainable_variables)

    else:  # torch
        import torch

        def gradients(x, y):
            x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
            with torch.enable_grad():
                y_pred = model(x, training=False)
                value = model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
                variables = [v.value for v in model.trainable_variables]
                return torch.autograd.grad(value, variables, allow_unused=True)

    return lambda x, y: [
        None if g is None else keras.ops.convert_to_numpy(g) for g in gradients(x, y)
    ]
