"""Evaluation metrics of both seed papers, computed with torchmetrics on numpy inputs.

Every function takes numpy arrays (or sequences of them) and returns plain Python values
(``float``, ``int``, ``str``, ``None``, lists and dicts) so results can go straight into
``json.dumps``. A metric whose denominator is zero (e.g. sensitivity with no positive case) is
``None`` rather than a misleading 0. Mismatched lengths or shapes raise ``ValueError``.

Thresholded predictions use ``score >= threshold`` throughout (torchmetrics' own rule is
``>``; we binarise before calling it so classification and patient-level rules agree).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Sized
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from numpy.typing import ArrayLike
from torchmetrics.detection import MeanAveragePrecision
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
    binary_stat_scores,
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_precision,
    multiclass_recall,
)
from torchvision.ops import box_iou

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


# ----------------------------------------------------------------------------- validation


def _vector(values: ArrayLike, name: str, dtype: type = np.float64) -> np.ndarray:
    array: np.ndarray = np.asarray(values, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    return array


def _same_length(a: Sized, b: Sized, names: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{names} have different lengths: {len(a)} != {len(b)}")


def _binary_labels(values: ArrayLike, name: str) -> np.ndarray:
    labels = _vector(values, name)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{name} must contain only 0 and 1")
    return labels.astype(np.int64)


def _probabilities(values: ArrayLike, name: str) -> np.ndarray:
    scores = _vector(values, name)
    if not np.isfinite(scores).all() or (scores < 0).any() or (scores > 1).any():
        raise ValueError(f"{name} must be probabilities in [0, 1] (no NaN)")
    return scores


def _f(value: torch.Tensor) -> float:
    # torchmetrics computes in float32; 7 decimals drop its noise (0.6666666865 -> 0.6666667).
    return round(float(value), 7)


def _ratio_or_none(value: torch.Tensor, denominator: int) -> float | None:
    return _f(value) if denominator > 0 else None


def count_text(hits: int, total: int) -> str:
    """A count as seed 2 prints it, e.g. ``"100% (4/4)"`` or ``"66.7% (2/3)"``; ``"n/a (0/0)"``."""
    if total == 0:
        return "n/a (0/0)"
    percent = f"{100.0 * hits / total:.1f}".rstrip("0").rstrip(".")
    return f"{percent}% ({hits}/{total})"


# ----------------------------------------------------------------------------- classification


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


# ----------------------------------------------------------------------------- segmentation


def segmentation_overlap(
    pred_masks: Sequence[ArrayLike],
    true_masks: Sequence[ArrayLike],
    *,
    per_slice: bool = False,
    chunk: int = 32,
) -> dict[str, Any]:
    """IoU and Dice of binary masks over a set of 2-D slices.

    Parameters
    ----------
    pred_masks, true_masks
        Equal-length sequences of (y, x) masks (bool or integer; nonzero is foreground); each
        prediction has its truth's shape (different slices may differ in shape).
    per_slice
        Also return ``per_slice_iou`` / ``per_slice_dice`` lists (``None`` where excluded).
    chunk
        Slices counted per torchmetrics call (bounds memory).

    Returns
    -------
    dict
        ``iou_micro`` / ``dice_micro``: total intersection over total union (Dice:
        2·TP / (2·TP + FP + FN)) pooled over all pixels of all slices; ``iou_mean`` /
        ``dice_mean``: mean of per-slice values. A slice where prediction and truth are both
        empty has no defined IoU and is **excluded** from the means (counted in
        ``n_slices_both_empty``); a value is ``None`` when nothing is left to average. For
        "IoU on PE slices", pass only slices whose truth is non-empty. Also ``n_slices``,
        ``n_slices_scored``, ``n_slices_truth_nonempty``, ``tp``, ``fp``, ``fn`` (pixels).
    """
    _same_length(pred_masks, true_masks, "pred_masks and true_masks")
    if len(pred_masks) == 0:
        raise ValueError("segmentation_overlap needs at least one slice")
    counts = []  # per slice (tp, fp, fn)
    truth_nonempty = 0
    for start in range(0, len(pred_masks), max(1, chunk)):
        pairs = []
        for k in range(start, min(start + chunk, len(pred_masks))):
            pred = np.asarray(pred_masks[k]) != 0
            true = np.asarray(true_masks[k]) != 0
            if pred.ndim != 2 or pred.shape != true.shape:
                raise ValueError(
                    f"slice {k}: prediction {pred.shape} and truth {true.shape} "
                    "must be the same 2-D shape"
                )
            truth_nonempty += bool(true.any())
            pairs.append((pred, true))
        height = max(p.shape[0] for p, _ in pairs)
        width = max(p.shape[1] for p, _ in pairs)
        # Zero padding only adds true negatives. One extra empty slice per chunk: torchmetrics
        # 1.9 fails on a single sample in samplewise mode.
        stacked = np.zeros((2, len(pairs) + 1, height, width), dtype=np.uint8)
        for i, (pred, true) in enumerate(pairs):
            stacked[0, i, : pred.shape[0], : pred.shape[1]] = pred
            stacked[1, i, : true.shape[0], : true.shape[1]] = true
        tensors = torch.from_numpy(stacked).long()
        stats = binary_stat_scores(tensors[0], tensors[1], multidim_average="samplewise")
        counts.extend(stats[:-1, [0, 1, 3]].tolist())  # columns: tp, fp, tn, fn, support
    table = np.asarray(counts, dtype=np.float64)  # (n_slices, 3)
    tp, fp, fn = (int(v) for v in table.sum(axis=0))
    union = table.sum(axis=1)  # tp + fp + fn per slice; 0 when both masks are empty
    scored = union > 0
    iou = np.divide(table[:, 0], union, out=np.zeros(len(union)), where=scored)
    dice = np.divide(2 * table[:, 0], union + table[:, 0], out=np.zeros(len(union)), where=scored)
    result: dict[str, Any] = {
        "iou_micro": tp / (tp + fp + fn) if tp + fp + fn else None,
        "dice_micro": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
        "iou_mean": float(iou[scored].mean()) if scored.any() else None,
        "dice_mean": float(dice[scored].mean()) if scored.any() else None,
        "n_slices": len(counts),
        "n_slices_scored": int(scored.sum()),
        "n_slices_both_empty": int((~scored).sum()),
        "n_slices_truth_nonempty": truth_nonempty,
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }
    if per_slice:
        for key, values in (("per_slice_iou", iou), ("per_slice_dice", dice)):
            result[key] = [float(v) if ok else None for v, ok in zip(values, scored, strict=True)]
    return result


# ----------------------------------------------------------------------------- detection


def _boxes(values: ArrayLike, columns: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, columns))
    if array.ndim != 2 or array.shape[1] != columns:
        raise ValueError(f"{name} must have shape (n, {columns}), got {array.shape}")
    if not np.isfinite(array).all() or (array[:, 2:4] < array[:, 0:2]).any():
        raise ValueError(f"{name} must be finite x0, y0, x1, y1 boxes with x1 >= x0, y1 >= y0")
    return array


def detection_metrics(
    pred_boxes: Sequence[ArrayLike],
    true_boxes: Sequence[ArrayLike],
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
) -> dict[str, Any]:
    """Single-class box detection metrics over a set of images.

    Parameters
    ----------
    pred_boxes
        Per image, (n, 5) ``x0, y0, x1, y1, score`` in pixels (an empty array for none).
    true_boxes
        Per image, (m, 4) ``x0, y0, x1, y1`` in pixels (empty for an image without findings).
    iou_threshold
        IoU at or above which a prediction may match a true box (precision/recall only).
    score_threshold
        Predictions scoring at or above this count for precision, recall and IoU.

    Returns
    -------
    dict
        ``ap50``: COCO average precision at IoU 0.5 over all predictions (torchmetrics
        ``MeanAveragePrecision``, pycocotools backend, at most 100 detections per image;
        ``None`` when there is no true box). ``precision`` / ``recall`` / ``f1`` at
        ``score_threshold`` with greedy one-to-one matching (highest score first, each to the
        unmatched true box of highest IoU ≥ ``iou_threshold``). ``mean_iou_matched``: mean IoU
        of those matched pairs. ``mean_best_iou``: mean over true boxes of the IoU with their
        best-overlapping kept prediction (0 when the image has none) — our reading of seed 1's
        localiser "IoU 0.836". Counts ``n_images``, ``n_images_with_truth``,
        ``n_true_boxes``, ``n_pred_boxes``, ``n_pred_kept``, ``tp``, ``fp``, ``fn``.
    """
    _same_length(pred_boxes, true_boxes, "pred_boxes and true_boxes (images)")
    ap_metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", iou_thresholds=[0.5])
    tp = n_true = n_pred = n_kept = with_truth = 0
    matched_ious: list[float] = []
    best_ious: list[float] = []
    for k, (pred_raw, true_raw) in enumerate(zip(pred_boxes, true_boxes, strict=True)):
        pred = torch.from_numpy(_boxes(pred_raw, 5, f"pred_boxes[{k}]")).float()
        true = torch.from_numpy(_boxes(true_raw, 4, f"true_boxes[{k}]")).float()
        ap_metric.update(
            [{"boxes": pred[:, :4], "scores": pred[:, 4], "labels": torch.zeros(len(pred)).int()}],
            [{"boxes": true, "labels": torch.zeros(len(true)).int()}],
        )
        n_true += len(true)
        n_pred += len(pred)
        with_truth += len(true) > 0
        kept = pred[pred[:, 4] >= score_threshold]
        kept = kept[torch.argsort(kept[:, 4], descending=True, stable=True)]
        n_kept += len(kept)
        if len(true) == 0:
            continue
        if len(kept) == 0:
            best_ious.extend([0.0] * len(true))
            continue
        iou = box_iou(kept[:, :4], true)  # (kept, true)
        best_ious.extend(iou.max(dim=0).values.tolist())
        free = torch.ones(len(true), dtype=torch.bool)
        for row in iou:
            candidates = torch.where(free & (row >= iou_threshold), row, -1.0)
            j = int(candidates.argmax())
            if candidates[j] >= 0:
                free[j] = False
                tp += 1
                matched_ious.append(float(row[j]))
    ap50 = _f(ap_metric.compute()["map"]) if n_true else None
    fp, fn = n_kept - tp, n_true - tp
    return {
        "ap50": ap50 if ap50 is None or ap50 >= 0 else None,
        "precision": tp / n_kept if n_kept else None,
        "recall": tp / n_true if n_true else None,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
        "mean_iou_matched": float(np.mean(matched_ious)) if matched_ious else None,
        "mean_best_iou": float(np.mean(best_ious)) if best_ious else None,
        "iou_threshold": float(iou_threshold),
        "score_threshold": float(score_threshold),
        "n_images": len(true_boxes),
        "n_images_with_truth": with_truth,
        "n_true_boxes": n_true,
        "n_pred_boxes": n_pred,
        "n_pred_kept": n_kept,
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


# ----------------------------------------------------------------------------- RSNA-STR


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
