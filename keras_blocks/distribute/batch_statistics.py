"""Batch normalization's moving statistics, made equal on every process."""

import weakref

import keras

from keras_blocks import _compat


def synchronize_batch_statistics(model: keras.Layer) -> int:
    """Replaces every moving mean and variance by its mean over the processes.

    Data-parallel training gives each process its own share of every batch,
    and batch normalization in training mode updates its moving mean and
    moving variance from the statistics of that share only. Gradients are
    averaged, so the trained weights stay equal on every process, but the
    moving statistics, which no gradient reaches, drift apart; a checkpoint
    written by one process then holds that process's statistics only. Call
    this at the end of each epoch, before the callbacks save or evaluate
    (timm's `distribute_bn(model, world_size, reduce=True)` does the same
    after every epoch).

    What each engine does on its own:
    - PyTorch (`torch.nn.parallel.DistributedDataParallel`): Keras' variables
      are `torch.nn.Parameter`s, the moving statistics ones with
      `requires_grad=False`. DDP broadcasts every parameter, these included,
      from rank 0 when it wraps the model, and never again: it reduces only
      gradients, and its `broadcast_buffers` concerns buffers, which a Keras
      model has none of. Here the statistics are summed over the default
      process group with `torch.distributed.all_reduce` and divided by the
      number of processes.
    - TensorFlow (`MirroredStrategy`, `MultiWorkerMirroredStrategy`): the
      moving statistics are mirrored variables with no aggregation; each
      replica updates its own copy from its share of the batch, reading the
      variable (a checkpoint, `get_weights`) gives the first replica's, and
      `evaluate` or `predict` under the strategy normalize each replica's
      share with that replica's copy. Here each copy is replaced by the mean
      of all replicas' copies (an all-reduce over the strategy's replicas, on
      every worker). With `bn_synchronized=True` the library's blocks
      normalize with the statistics of the global batch
      (`BatchNormalization(synchronized=True)`), every copy receives the same
      update, and this changes nothing.
    - JAX (`keras.distribution.DataParallel`): one program computes over the
      batch sharded across the devices, so the batch statistics are already
      those of the global batch and the moving statistics are replicated and
      equal. This function does nothing there.

    With one replica (on TensorFlow: the model's strategy has one; on PyTorch:
    no initialized `torch.distributed` group, or one process), there is
    nothing to average and nothing is done. It is a collective operation:
    every process must call it, in the same order.

    Args:
        model: `keras.Layer`. A model or layer whose `BatchNormalization`
            layers, at any depth (inside the library's blocks too), are
            synchronized. Every process must hold the same architecture.

    Returns:
        The number of `BatchNormalization` layers whose statistics were
        averaged: 0 with one replica and on JAX.

    Examples:
    >>> import keras
    >>> import keras_blocks
    >>> model = keras.Sequential(
    ...     [keras.Input((8, 8, 3)), keras_blocks.layers.ConvBNAct(4)]
    ... )
    >>> keras_blocks.distribute.synchronize_batch_statistics(model)  # 1 process
    0

    In a PyTorch training loop under `torchrun`, at each epoch's end:

    ```python
    ddp_model = torch.nn.parallel.DistributedDataParallel(model)
    for epoch in range(epochs):
        ...  # the epoch's steps through `ddp_model`
        keras_blocks.distribute.synchronize_batch_statistics(model)
        callbacks.on_epoch_end(epoch, logs)
    ```
    """
    backend = keras.config.backend()
    if backend == "tensorflow":
        return _tensorflow_mean(model)
    if backend != "torch":
        return 0
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return 0
    count = dist.get_world_size()
    if count == 1:
        return 0
    layers = _batch_normalizations(model)
    with torch.no_grad():
        for layer in layers:
            for variable in (layer.moving_mean, layer.moving_variance):
                # The parameter itself, in place: the tensor that DDP and
                # the optimizer hold stays the same object.
                tensor = variable.value
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
                tensor.div_(count)
    return len(layers)


def _batch_normalizations(model):
    # Every depth: `model.layers` holds the top level only, not a block's
    # sublayers.
    return [
        layer
        for layer in _compat.nested_layers(model, recursive=True, include_self=True)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.built
    ]


def _tensorflow_mean(model):
    import tensorflow as tf

    strategy = getattr(model, "distribute_strategy", None)
    strategy = strategy or tf.distribute.get_strategy()
    if strategy.num_replicas_in_sync == 1:
        return 0
    layers = _batch_normalizations(model)
    statistics = [
        variable.value
        for layer in layers
        for variable in (layer.moving_mean, layer.moving_variance)
    ]
    if not statistics:
        return 0
    # One traced function per model and variables, reused at every epoch's
    # end: tracing it anew each time cost seconds per call.
    key = tuple(id(v) for v in statistics)
    cached = _AVERAGES.get(model)
    if cached is None or cached[0] != key:
        cached = _AVERAGES[model] = (key, _averaging_function(statistics))
    strategy.run(cached[1])
    return len(layers)


_AVERAGES = weakref.WeakKeyDictionary()


def _averaging_function(statistics):
    import tensorflow as tf

    @tf.function
    def average():
        # In a replica's context, reading a mirrored variable reads that
        # replica's copy, and assigning it assigns that copy.
        context = tf.distribute.get_replica_context()
        means = context.all_reduce(
            tf.distribute.ReduceOp.MEAN, [tf.identity(v) for v in statistics]
        )
        for variable, mean in zip(statistics, means, strict=True):
            variable.assign(mean)

    return average
