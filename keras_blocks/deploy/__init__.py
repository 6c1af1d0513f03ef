"""Deployment: a model exported to SavedModel, LiteRT or ONNX, and run there."""

from keras_blocks.deploy.export_model import FORMATS, export_model
from keras_blocks.deploy.exported_model import ExportedModel

__all__ = ["FORMATS", "ExportedModel", "export_model"]
