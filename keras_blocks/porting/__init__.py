"""Weights from PyTorch: a state dict file loaded into a Keras model, strictly."""

from keras_blocks.porting.load_state_dict import (
    Flattened,
    LoadReport,
    load_state_dict,
    weight_layers,
)
from keras_blocks.porting.state_dict_file import read_state_dict

__all__ = [
    "Flattened",
    "LoadReport",
    "load_state_dict",
    "read_state_dict",
    "weight_layers",
]
