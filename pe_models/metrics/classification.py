"""Binary, multiclass and patient-level classification metrics and curve points."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_auroc,
    binary_average_precision,
    binary_confusion_matrix,
    binary_f1_score,
    binary_precision,
    binary_precision_recall_curve,
    binary_recall,
    binary_roc,
    binary_specificity,
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_precision,
    multiclass_recall,
)

from pe_models.metrics._checks import (
    _binary_labels,
    _f,
    _probabilities,
    _ratio_or_none,
    _same_length,
    _vector,
    count_text,
)


def binary_classification(
    y_true: ArrayLike, y_score: ArrayLike, *, threshold: float = 0.5
) -> dict[str, Any]:
    """Threshold and ranking metrics of a binary classifier.

    Parameters
    ----------
    y_true
        (n,) labels, 0 or 1.
    y_score
        (n,) predicted probabilities of the positive class, in [0, 1].
    threshold
        A case is predicted positive when ``score >= threshold``.

    Returns
    -------
    dict
        ``n``, ``n_positive``, ``n_negative``, ``threshold``, ``accuracy``, ``sensitivity``
        (recall of positives), ``specificity``, ``precision``, ``f1``, ``roc_auc`` and
        ``average_precision`` (both ``None`` unless both classes are present) and
        ``confusion_matrix`` ``[[tn, fp], [fn, tp]]`` (rows: truth, columns: prediction).
    """
    labels = _binary_labels(y_true, "y_true")
    scores = _probabilities(y_score, "y_score")
    _same_length(labels, scores, "y_true and y_score")
    if labels.size == 0:
        raise ValueError("binary_classification needs at least one case")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    target = torch.from_numpy(labels)
    score = torch.from_numpy(scores)
    pred = (score >= threshold).long()
    (tn, fp), (fn, tp) = binary_confusion_matrix(pred, target).tolist()
    both_classes = 0 < tp + fn < labels.size
    return {
        "n": int(labels.size),
        "n_positive": int(tp + fn),
        "n_negative": int(tn + fp),
        "threshold": float(threshold),
        "accuracy": _f(binary_accuracy(pred, target)),
        "sensitivity": _ratio_or_none(binary_recall(pred, target), tp + fn),
        "specificity": _ratio_or_none(binary_specificity(pred, target), tn + fp),
        "precision": _ratio_or_none(binary_precision(pred, target), tp + fp),
        "f1": _ratio_or_none(binary_f1_score(pred, target), 2 * tp + fp + fn),
        "roc_auc": _f(binary_auroc(score, target)) if both_classes else None,
        "average_precision": (
            _f(binary_average_precision(score, target)) if both_classes else None
        ),
        "confusion_matrix": [[int(tn), int(fp)], [int(fn), int(tp)]],
    }


def _curve_inputs(y_true: ArrayLike, y_score: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    labels = _binary_labels(y_true, "y_true")
    scores = _probabilities(y_score, "y_score")
    _same_length(labels, scores, "y_true and y_score")
    if not 0 < labels.sum() < labels.size:
        raise ValueError("a curve needs both positive and negative cases")
    return torch.from_numpy(scores), torch.from_numpy(labels)


def roc_curve_points(y_true: ArrayLike, y_score: ArrayLike) -> dict[str, Any]:
    """ROC curve for plotting: ``fpr``, ``tpr``, ``thresholds`` (lists, same length), ``auc``.

    ``y_true`` (n,) 0/1 labels, ``y_score`` (n,) probabilities. Raises ``ValueError`` unless
    both classes are present.
    """
    score, target = _curve_inputs(y_true, y_score)
    fpr, tpr, thresholds = binary_roc(score, target)
    return {
        "fpr": fpr.tolist(),
        "tpr": tpr.tolist(),
        "thresholds": thresholds.tolist(),
        "auc": _f(binary_auroc(score, target)),
    }


def pr_curve_points(y_true: ArrayLike, y_score: ArrayLike) -> dict[str, Any]:
    """Precision–recall curve for plotting.

    ``precision``, ``recall`` (lists, same length), ``thresholds`` (one shorter: the last point
    is precision 1 at recall 0), ``average_precision`` and ``prevalence``. Raises
    ``ValueError`` unless both classes are present.
    """
    score, target = _curve_inputs(y_true, y_score)
    precision, recall, thresholds = binary_precision_recall_curve(score, target)
    return {
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "thresholds": thresholds.tolist(),
        "average_precision": _f(binary_average_precision(score, target)),
        "prevalence": float(target.double().mean()),
    }


def binary_curves(y_true: ArrayLike, y_score: ArrayLike) -> dict[str, Any]:
    """``{"roc": roc_curve_points(...), "pr": pr_curve_points(...)}``; ``{}`` for one class."""
    labels = _binary_labels(y_true, "y_true")
    if not 0 < labels.sum() < labels.size:
        return {}
    return {"roc": roc_curve_points(labels, y_score), "pr": pr_curve_points(labels, y_score)}


def multiclass_confusion(
    y_true: ArrayLike, y_pred: ArrayLike, class_names: Sequence[str]
) -> dict[str, Any]:
    """Per-class sensitivity, overall accuracy and confusion matrix (seed 2's triage table).

    Parameters
    ----------
    y_true
        (n,) class indices into ``class_names``.
    y_pred
        (n,) predicted class indices, or (n, c) class scores (the argmax is taken).
    class_names
        The c ≥ 2 class names, e.g. ``("normal", "other_disease", "pe")``.

    Returns
    -------
    dict
        ``class_names``, ``n``, ``accuracy``, ``sensitivity`` / ``precision`` / ``support``
        (dicts by class name; ``None`` where undefined), ``sensitivity_text`` (e.g.
        ``"92.3% (12/13)"``) and ``confusion_matrix`` (c × c, rows truth, columns prediction).
    """
    names = [str(name) for name in class_names]
    num = len(names)
    if num < 2:
        raise ValueError("multiclass_confusion needs at least two class names")
    labels = _vector(y_true, "y_true", np.int64)
    pred = np.asarray(y_pred)
    if pred.ndim == 2:
        if pred.shape[1] != num:
            raise ValueError(f"y_pred has {pred.shape[1]} score columns, expected {num}")
        pred = pred.argmax(axis=1)
    pred = _vector(pred, "y_pred", np.int64)
    _same_length(labels, pred, "y_true and y_pred")
    if labels.size == 0:
        raise ValueError("multiclass_confusion needs at least one case")
    for name, values in (("y_true", labels), ("y_pred", pred)):
        if values.min() < 0 or values.max() >= num:
            raise ValueError(f"{name} has class indices outside 0..{num - 1}")
    target, predicted = torch.from_numpy(labels), torch.from_numpy(pred)
    matrix = multiclass_confusion_matrix(predicted, target, num_classes=num).tolist()
    support = [sum(row) for row in matrix]
    predicted_count = [sum(row[k] for row in matrix) for k in range(num)]
    recall = multiclass_recall(predicted, target, num_classes=num, average="none").tolist()
    precision = multiclass_precision(predicted, target, num_classes=num, average="none").tolist()
    accuracy = multiclass_accuracy(predicted, target, num_classes=num, average="micro")
    return {
        "class_names": names,
        "n": int(labels.size),
        "accuracy": _f(accuracy),
        "sensitivity": {
            n: (round(r, 7) if s else None) for n, r, s in zip(names, recall, support, strict=True)
        },
        "sensitivity_text": {n: count_text(matrix[k][k], support[k]) for k, n in enumerate(names)},
        "precision": {
            n: (round(p, 7) if c else None)
            for n, p, c in zip(names, precision, predicted_count, strict=True)
        },
        "support": dict(zip(names, support, strict=True)),
        "confusion_matrix": matrix,
    }


def patient_level(
    slice_scores_by_patient: Mapping[str, ArrayLike],
    patient_labels: Mapping[str, int],
    *,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Patient-level results under seed 2's rule: positive when any slice scores ≥ threshold.

    Parameters
    ----------
    slice_scores_by_patient
        Patient id → (n_slices,) slice probabilities (at least one slice each).
    patient_labels
        Patient id → 0/1 truth; must have exactly the same ids.
    threshold
        Slice probability at or above which a slice (and so its patient) is positive.

    Returns
    -------
    dict
        Everything :func:`binary_classification` returns on the per-patient maximum slice
        score, plus ``accuracy_text`` / ``sensitivity_text`` / ``specificity_text`` such as
        ``"100% (4/4)"`` and ``patients``: id → ``{"label", "max_score", "predicted"}``.
    """
    ids = list(patient_labels)
    missing = set(ids) ^ set(slice_scores_by_patient)
    if missing:
        raise ValueError(f"patients without both scores and a label: {sorted(missing)}")
    max_scores = []
    for pid in ids:
        scores = _probabilities(slice_scores_by_patient[pid], f"slice scores of {pid!r}")
        if scores.size == 0:
            raise ValueError(f"patient {pid!r} has no slice scores")
        max_scores.append(float(scores.max()))
    labels = [int(patient_labels[pid]) for pid in ids]
    result = binary_classification(labels, max_scores, threshold=threshold)
    (tn, fp), (fn, tp) = result["confusion_matrix"]
    result["accuracy_text"] = count_text(tp + tn, result["n"])
    result["sensitivity_text"] = count_text(tp, tp + fn)
    result["specificity_text"] = count_text(tn, tn + fp)
    result["patients"] = {
        pid: {"label": lab, "max_score": s, "predicted": int(s >= threshold)}
        for pid, lab, s in zip(ids, labels, max_scores, strict=True)
    }
    return result
