"""Markers the callbacks' tests share."""

import pytest

# CheckpointManager has two stores: tf.train's under TensorFlow, and
# `_checkpoint_store.KerasStore`, the same code under JAX and PyTorch: Keras'
# own `.weights.h5` and NumPy files of the variables' values (`save_weights`
# and `load_weights`, the same calls on both), a manifest, an index and a lock.
# A test of that bookkeeping (which checkpoints exist, which one is restored,
# what is damaged or refused) runs once per store, PyTorch's pass being the
# fastest; that a resume is exact is checked on every backend
# (test_checkpoint_manager.py's `test_resume_is_exact` and the other resumes,
# test_resume_sigkill.py).
STORES = pytest.mark.backends(
    "tensorflow",
    "torch",
    reason="one backend per checkpoint store: tf.train's (TensorFlow) and "
    "KerasStore (JAX and PyTorch run the same file handling)",
)

# Argument checks, configurations and their round trips: Python and NumPy, the
# same under any backend.
CHECKS = pytest.mark.backend_independent(
    reason="argument and configuration checks, before any training"
)
