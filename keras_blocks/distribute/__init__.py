"""Training on several devices and machines: who writes, and what Keras lacks."""

from typing import TYPE_CHECKING

from keras_blocks.distribute.batch_statistics import synchronize_batch_statistics
from keras_blocks.distribute.cluster import Cluster, current_cluster

if TYPE_CHECKING:  # for readers and the docs; imported on first use below
    from keras_blocks.distribute.multi_worker_mirrored_strategy import (
        MultiWorkerMirroredStrategy,
    )

__all__ = [
    "Cluster",
    "MultiWorkerMirroredStrategy",
    "current_cluster",
    "synchronize_batch_statistics",
]


def __getattr__(name):
    # TensorFlow is imported only by those who use its strategy.
    if name == "MultiWorkerMirroredStrategy":
        from keras_blocks.distribute.multi_worker_mirrored_strategy import (
            MultiWorkerMirroredStrategy,
        )

        return MultiWorkerMirroredStrategy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
