"""A model's predictions on one batch, computed by this process alone."""

import keras
import numpy as np


def batch_predictor(model, strategy=None):
    """A function `x -> outputs` (NumPy) that predicts one batch of `x`.

    Keras' `predict_on_batch` gives each replica of a TensorFlow strategy the
    whole batch and concatenates their outputs: under `MirroredStrategy` over
    2 devices, 16 images come back as 32 rows; under
    `MultiWorkerMirroredStrategy` it also gathers the rows of every worker, a
    collective operation. Under a strategy of several replicas this splits the
    batch over this process's replicas instead, each predicts its part with
    `model.predict_step` from its copy of the weights (mirrored, so the same
    on every replica), and the parts are joined in order: the rows of `x`,
    with no operation across processes.

    Args:
        model: a `keras.Model`.
        strategy: the `tf.distribute.Strategy` whose replicas predict (on
            TensorFlow), or None for `model.distribute_strategy`: a model
            built outside the scope (such as one over the layers of a model
            built in it) has the default strategy.

    Returns:
        A function of a NumPy batch, returning the model's outputs as NumPy
        arrays (a structure of them for several outputs).
    """
    if keras.backend.backend() == "tensorflow":
        strategy = strategy or model.distribute_strategy
        if strategy.num_replicas_in_sync > 1:
            return _replica_predictor(model, strategy)
    return model.predict_on_batch


def _replica_predictor(model, strategy):
    import tensorflow as tf

    local = len(strategy.extended.worker_devices)  # this process's replicas

    def one_replica(x):
        return model.predict_step((x,))

    # One trace per size of the parts; reduce_retracing makes the batch
    # dimension unknown after the first change (the last, smaller batch).
    @tf.function(reduce_retracing=True, autograph=False)
    def predict(parts):
        outputs = strategy.run(one_replica, args=(parts,))
        return strategy.experimental_local_results(outputs)

    def predict_batch(x):
        x = np.asarray(x)
        count = len(x)
        # Equal parts, none empty (an empty batch fails in some ops, such as a
        # convolution on the CPU): the last row repeated up to a multiple of
        # the replicas, and its predictions dropped.
        size = -(-count // local)
        padded = np.concatenate([x, np.repeat(x[-1:], size * local - count, axis=0)])
        parts = np.split(padded, local)
        # Replicas are numbered across processes: worker k holds k * local + i.
        values = strategy.experimental_distribute_values_from_function(
            lambda context: tf.constant(parts[context.replica_id_in_sync_group % local])
        )
        outputs = predict(values)  # one structure per local replica, in order
        return keras.tree.map_structure(
            lambda *rows: np.concatenate([np.asarray(r) for r in rows])[:count],
            *outputs,
        )

    return predict_batch
