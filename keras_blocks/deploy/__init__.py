"""Deployment: a model exported to SavedModel, LiteRT or ONNX, and run there."""

from keras_blocks.deploy.export_model import FORMATS, check_output_path, export_model
from keras_blocks.deploy.exported_model import ExportedModel

__all__ = ["FORMATS", "ExportedModel", "check_output_path", "export_model"]
