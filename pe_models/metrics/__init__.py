"""Evaluation metrics of both seed papers, computed with torchmetrics on numpy inputs.

Every function takes numpy arrays (or sequences of them) and returns plain Python values
(``float``, ``int``, ``str``, ``None``, lists and dicts) so results can go straight into
``json.dumps``. A metric whose denominator is zero (e.g. sensitivity with no positive case) is
``None`` rather than a misleading 0. Mismatched lengths or shapes raise ``ValueError``.

Thresholded predictions use ``score >= threshold`` throughout (torchmetrics' own rule is
``>``; we binarise before calling it so classification and patient-level rules agree).

Modules: :mod:`~pe_models.metrics.classification` (binary, curves, multiclass, patient
level), :mod:`~pe_models.metrics.overlap` (segmentation IoU / Dice, box detection),
:mod:`~pe_models.metrics.pieces` (clot pieces and their boxes found, by size) and
:mod:`~pe_models.metrics.rsna` (RSNA-STR weighted log loss); every public name is re-exported
here, so ``from pe_models.metrics import ...`` is the way in.
"""

from __future__ import annotations

from pe_models.metrics._checks import count_text
from pe_models.metrics.classification import (
    binary_classification,
    binary_curves,
    multiclass_confusion,
    patient_level,
    pr_curve_points,
    roc_curve_points,
)
from pe_models.metrics.overlap import (
    DEFAULT_BOX_SCORE_CUTS,
    detection_metrics,
    detection_score_cuts,
    segmentation_overlap,
    study_overlap,
)
from pe_models.metrics.pieces import boxes_by_size, clot_pieces_by_size
from pe_models.metrics.rsna import RSNA_EXAM_WEIGHTS, RSNA_IMAGE_WEIGHT, rsna_weighted_log_loss

__all__ = [
    "DEFAULT_BOX_SCORE_CUTS",
    "RSNA_EXAM_WEIGHTS",
    "RSNA_IMAGE_WEIGHT",
    "binary_classification",
    "binary_curves",
    "boxes_by_size",
    "clot_pieces_by_size",
    "count_text",
    "detection_metrics",
    "detection_score_cuts",
    "multiclass_confusion",
    "patient_level",
    "pr_curve_points",
    "roc_curve_points",
    "rsna_weighted_log_loss",
    "segmentation_overlap",
    "study_overlap",
]
