"""Evaluating trained classifiers as the papers did: test-time crops and ensembles."""

from keras_blocks.evaluation.ensemble import Ensemble
from keras_blocks.evaluation.tta import (
    SCHEMES,
    TTAResult,
    crop_count,
    evaluate_with_tta,
    multi_crop,
    predict_with_tta,
    ten_crop,
)

__all__ = [
    "SCHEMES",
    "Ensemble",
    "TTAResult",
    "crop_count",
    "evaluate_with_tta",
    "multi_crop",
    "predict_with_tta",
    "ten_crop",
]
