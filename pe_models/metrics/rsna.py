"""Weighted log loss of the Kaggle RSNA-STR Pulmonary Embolism Detection challenge (2020)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from numpy.typing import ArrayLike

from pe_models.metrics._checks import _binary_labels, _probabilities, _same_length

# Kaggle RSNA-STR PE Detection (2020) label weights.
RSNA_EXAM_WEIGHTS: dict[str, float] = {
    "negative_exam_for_pe": 0.0736196319,
    "indeterminate": 0.09202453988,
    "chronic_pe": 0.1042944785,
    "acute_and_chronic_pe": 0.1042944785,
    "central_pe": 0.1877300613,
    "leftsided_pe": 0.06257668712,
    "rightsided_pe": 0.06257668712,
    "rv_lv_ratio_gte_1": 0.2346625767,
    "rv_lv_ratio_lt_1": 0.0782208589,
}
RSNA_IMAGE_WEIGHT = 0.07361963  # pe_present_on_image, scaled per exam by q_i


def _log_losses(truth: np.ndarray, pred: np.ndarray, eps: float) -> torch.Tensor:
    clipped = torch.from_numpy(np.clip(pred, eps, 1.0 - eps))
    return F.binary_cross_entropy(
        clipped, torch.from_numpy(truth.astype(np.float64)), reduction="none"
    )


def rsna_weighted_log_loss(
    exam_truth: Mapping[str, ArrayLike],
    exam_pred: Mapping[str, ArrayLike],
    image_truth_by_exam: Sequence[ArrayLike] | None = None,
    image_pred_by_exam: Sequence[ArrayLike] | None = None,
    *,
    eps: float = 1e-15,
) -> dict[str, Any]:
    """Weighted log loss of the Kaggle RSNA-STR Pulmonary Embolism Detection challenge (2020).

    Each exam label j contributes ``w_j · BCE(y_ij, p_ij)`` with weight ``w_j``
    (:data:`RSNA_EXAM_WEIGHTS`); each image k of exam i contributes
    ``w · q_i · BCE(y_ik, p_ik)`` with weight ``w · q_i``, where ``w`` =
    :data:`RSNA_IMAGE_WEIGHT` and ``q_i`` is the fraction of exam i's images that show PE (so
    images of PE-negative exams weigh nothing). The score is the sum of all contributions
    divided by the sum of all weights. Only the labels passed are scored.

    Parameters
    ----------
    exam_truth, exam_pred
        Label name → (n_exams,) 0/1 truths / probabilities; both with the same label names.
    image_truth_by_exam, image_pred_by_exam
        Per exam (same exam order), (n_images_i,) ``pe_present_on_image`` truths /
        probabilities; both ``None`` to score exam labels only.
    eps
        Probabilities are clipped to [eps, 1 − eps] before the logarithm.

    Returns
    -------
    dict
        ``weighted_log_loss``, ``exam_log_loss`` / ``image_log_loss`` (each part divided by
        its own weights; ``None`` when that part has no weight), ``per_label`` (unweighted mean
        log loss per exam label), ``n_exams``, ``n_images``, ``total_weight``.
    """
    unknown = set(exam_truth) - set(RSNA_EXAM_WEIGHTS)
    if unknown:
        raise ValueError(
            f"unknown RSNA exam labels {sorted(unknown)}; valid: {sorted(RSNA_EXAM_WEIGHTS)}"
        )
    if set(exam_truth) != set(exam_pred):
        raise ValueError(
            f"exam_truth and exam_pred have different labels: "
            f"{sorted(exam_truth)} != {sorted(exam_pred)}"
        )
    if (image_truth_by_exam is None) != (image_pred_by_exam is None):
        raise ValueError("give both image_truth_by_exam and image_pred_by_exam, or neither")
    n_exams: int | None = None
    exam_loss = exam_weight = 0.0
    per_label: dict[str, float] = {}
    for label in exam_truth:
        truth = _binary_labels(exam_truth[label], f"exam_truth[{label!r}]")
        pred = _probabilities(exam_pred[label], f"exam_pred[{label!r}]")
        _same_length(truth, pred, f"exam_truth[{label!r}] and exam_pred[{label!r}]")
        if n_exams is not None and len(truth) != n_exams:
            raise ValueError(f"exam label {label!r} has {len(truth)} exams, others {n_exams}")
        if len(truth) == 0:
            raise ValueError(f"exam label {label!r} has no exams")
        n_exams = len(truth)
        losses = _log_losses(truth, pred, eps)
        exam_loss += RSNA_EXAM_WEIGHTS[label] * float(losses.sum())
        exam_weight += RSNA_EXAM_WEIGHTS[label] * len(truth)
        per_label[label] = float(losses.mean())
    image_loss = image_weight = 0.0
    n_images = 0
    if image_truth_by_exam is not None and image_pred_by_exam is not None:
        _same_length(image_truth_by_exam, image_pred_by_exam, "image truth and pred (exams)")
        if n_exams is not None and len(image_truth_by_exam) != n_exams:
            raise ValueError(
                f"image lists cover {len(image_truth_by_exam)} exams, exam labels {n_exams}"
            )
        n_exams = len(image_truth_by_exam)
        for i, (truth_raw, pred_raw) in enumerate(
            zip(image_truth_by_exam, image_pred_by_exam, strict=True)
        ):
            truth = _binary_labels(truth_raw, f"image_truth_by_exam[{i}]")
            pred = _probabilities(pred_raw, f"image_pred_by_exam[{i}]")
            _same_length(truth, pred, f"image truth and prediction of exam {i}")
            n_images += len(truth)
            if truth.sum() == 0:
                continue  # q_i = 0: no weight
            q_i = float(truth.mean())
            image_loss += RSNA_IMAGE_WEIGHT * q_i * float(_log_losses(truth, pred, eps).sum())
            image_weight += RSNA_IMAGE_WEIGHT * q_i * len(truth)
    if exam_weight + image_weight == 0:
        raise ValueError("nothing to score: no exam labels and no image with PE")
    return {
        "weighted_log_loss": (exam_loss + image_loss) / (exam_weight + image_weight),
        "exam_log_loss": exam_loss / exam_weight if exam_weight else None,
        "image_log_loss": image_loss / image_weight if image_weight else None,
        "per_label": per_label,
        "n_exams": int(n_exams or 0),
        "n_images": n_images,
        "total_weight": exam_weight + image_weight,
    }
