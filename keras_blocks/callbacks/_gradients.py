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

        strategy = model.distribute_strategy

        def replica_gradients(x, y):
            with tf.GradientTape() as tape:
                y_pred = model(x, training=False)
                value = model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
                # Keras divides the loss by the strategy's replicas, whose
                # gradients the optimizer sums (`unscale_loss_for_distribution`
                # undoes it for its metrics): these are of the whole sample.
                value = value * tf.distribute.get_strategy().num_replicas_in_sync
            return tape.gradient(value, model.trainable_variables)

        def gradients(x, y):
            # In a replica context, where a strategy's variables can be
            # differentiated (not in the cross-replica context of its scope,
            # where `fit` may run the callbacks): each replica of this process
            # computes the gradients of the whole sample from its copy of the
            # weights, with no collective operation, and the first is kept.
            outputs = strategy.run(replica_gradients, args=(x, y))
            return [
                None if g is None else strategy.experimental_local_results(g)[0]
                for g in outputs
            ]

        if strategy.num_replicas_in_sync > 1 and not model.run_eagerly:
            # Run eagerly, a strategy starts a thread per replica at each call.
            gradients = tf.function(gradients, autograph=False)

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
