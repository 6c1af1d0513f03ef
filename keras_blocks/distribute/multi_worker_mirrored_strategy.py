"""`tf.distribute.MultiWorkerMirroredStrategy` that Keras 3.15's `fit` can use."""

import tensorflow as tf


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`tf.distribute.MultiWorkerMirroredStrategy`, with the reductions Keras asks.

    Keras 3.15's `fit` fails under TensorFlow's multi-worker strategy
    (keras-team/keras#20585) in two places, both calls to `strategy.reduce`
    that TensorFlow's multi-worker implementation does not accept:

    - before the first step, `fit` reduces a whole batch, a tuple of
      per-replica tensors, to read its shapes; the strategy reduces one
      tensor at a time and fails to convert the tuple;
    - at every step, the loss and metrics, per-replica scalars, are reduced
      with `axis=0`, which a scalar does not have
      (tensorflow/tensorflow#72388: "Invalid reduction dimension 0 for input
      with 0 dimensions").

    This strategy reduces each tensor of a structure on its own, and reduces
    a scalar over the replicas only (`axis=None`), which is the mean Keras
    means. Everything else is TensorFlow's strategy unchanged: create it as
    the first TensorFlow call of the program, with `TF_CONFIG` set, and build
    and compile the model in its `scope()`.

    It takes TensorFlow's arguments: `cluster_resolver` (None reads
    `TF_CONFIG`) and `communication_options`.

    Examples:
        It is TensorFlow's strategy, where TensorFlow's is accepted:
        >>> import tensorflow as tf
        >>> import keras_blocks
        >>> strategy_class = keras_blocks.distribute.MultiWorkerMirroredStrategy
        >>> issubclass(strategy_class, tf.distribute.MultiWorkerMirroredStrategy)
        True

        On each machine, with `TF_CONFIG` naming the cluster and this task
        (a strategy that is created in a doctest would take over its process):
        ```python
        strategy = keras_blocks.distribute.MultiWorkerMirroredStrategy()
        with strategy.scope():
            model = build_model()
            model.compile(...)
        model.fit(dataset, callbacks=[keras_blocks.callbacks.CheckpointManager(...)])
        ```
    """

    def reduce(self, reduce_op, value, axis):
        def reduce_one(tensor):
            local = self.experimental_local_results(tensor)[0]
            scalar = axis == 0 and getattr(local, "shape", None) is not None
            scalar = scalar and local.shape.rank == 0
            return super(MultiWorkerMirroredStrategy, self).reduce(
                reduce_op, tensor, axis=None if scalar else axis
            )

        return tf.nest.map_structure(reduce_one, value)
