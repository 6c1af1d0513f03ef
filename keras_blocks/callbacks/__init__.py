"""Training callbacks: checkpoints with exact resume, TensorBoard logs, LR reduction."""

from keras_blocks.callbacks.checkpoint_manager import CheckpointManager
from keras_blocks.callbacks.reduce_lr_on_plateau import ReduceLROnPlateau
from keras_blocks.callbacks.scaled_schedule import ScaledSchedule
from keras_blocks.callbacks.tensorboard_image_logger import TensorBoardImageLogger

__all__ = [
    "CheckpointManager",
    "ReduceLROnPlateau",
    "ScaledSchedule",
    "TensorBoardImageLogger",
]
