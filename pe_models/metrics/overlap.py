"""Overlap metrics: IoU / Dice of segmentation masks and box detection metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torchmetrics.detection import MeanAveragePrecision
from torchmetrics.functional.classification import binary_stat_scores
from torchvision.ops import box_iou

from pe_models.metrics._checks import _boxes, _f, _same_length

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


def study_overlap(counts: Sequence[tuple[int, int, int]]) -> dict[str, Any]:
    """IoU and Dice of 3-D masks, from each study's voxel counts.

    Unlike :func:`segmentation_overlap` on PE slices, false positives on the slices without
    clot count: a mask that runs on past the end of a clot is penalised here.

    Parameters
    ----------
    counts
        Per study, ``(tp, fp, fn)`` voxels of the predicted mask against the true one, summed
        over the slices the prediction covers.

    Returns
    -------
    dict
        ``iou_micro`` / ``dice_micro`` pooled over all voxels of all studies; ``dice_mean``:
        the mean of per-study Dice (a study where both masks are empty is left out; ``None``
        when none is left); ``n_studies``, ``tp``, ``fp``, ``fn``.
    """
    table = np.asarray(counts, dtype=np.float64).reshape(-1, 3)
    if len(table) == 0:
        raise ValueError("study_overlap needs at least one study")
    if (table < 0).any():
        raise ValueError("voxel counts must not be negative")
    tp, fp, fn = (int(v) for v in table.sum(axis=0))
    denominators = 2 * table[:, 0] + table[:, 1] + table[:, 2]
    scored = denominators > 0
    dice = 2 * table[scored, 0] / denominators[scored]
    return {
        "iou_micro": tp / (tp + fp + fn) if tp + fp + fn else None,
        "dice_micro": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
        "dice_mean": float(dice.mean()) if scored.any() else None,
        "n_studies": len(table),
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


# ----------------------------------------------------------------------------- detection


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
        best_ious.extend(box_iou(kept[:, :4], true).max(dim=0).values.tolist())
        matched = _greedy_match_ious(kept, true, iou_threshold)
        matched = matched[matched >= 0]
        tp += len(matched)
        matched_ious.extend(matched.tolist())
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


DEFAULT_BOX_SCORE_CUTS = (0.05, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
"""Box score cuts of :func:`detection_score_cuts`: torchvision's own floor (0.05) upwards."""


def detection_score_cuts(
    pred_boxes: Sequence[ArrayLike],
    true_boxes: Sequence[ArrayLike],
    score_cuts: Sequence[float] = DEFAULT_BOX_SCORE_CUTS,
    *,
    iou_threshold: float = 0.5,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a reader sees of a localiser at each box score cut, and its precision–recall curve.

    Matching is :func:`detection_metrics`' greedy one (highest score first). A box's match
    depends only on the boxes scoring above it, so one matching of all boxes gives precision
    and recall at every cut, equal to :func:`detection_metrics` with that ``score_threshold``.

    Parameters
    ----------
    pred_boxes
        Per image, (n, 5) ``x0, y0, x1, y1, score`` in pixels (an empty array for none).
    true_boxes
        Per image, (m, 4) ``x0, y0, x1, y1`` in pixels (empty for an image without findings).
    score_cuts
        Box scores at which to report; a box counts at a cut when its score is at or above it.
    iou_threshold
        IoU at or above which a prediction may match a true box.

    Returns
    -------
    metrics : dict
        ``precision``, ``recall``, ``false_boxes_per_image`` and ``kept_boxes``, each a dict
        keyed by the cut written with two decimals (precision ``None`` where no box is kept,
        recall ``None`` without true boxes); ``iou_threshold``, ``n_images``, ``n_true_boxes``.
    pr : dict
        ``precision``, ``recall`` and ``thresholds`` (box scores, descending), one point per
        distinct score, for plotting.
    """
    _same_length(pred_boxes, true_boxes, "pred_boxes and true_boxes (images)")
    scores: list[np.ndarray] = [np.zeros(0)]
    hits: list[np.ndarray] = [np.zeros(0, dtype=bool)]
    n_true = 0
    for k, (pred_raw, true_raw) in enumerate(zip(pred_boxes, true_boxes, strict=True)):
        pred = torch.from_numpy(_boxes(pred_raw, 5, f"pred_boxes[{k}]")).float()
        true = torch.from_numpy(_boxes(true_raw, 4, f"true_boxes[{k}]")).float()
        pred = pred[torch.argsort(pred[:, 4], descending=True, stable=True)]
        n_true += len(true)
        scores.append(pred[:, 4].numpy())
        hits.append((_greedy_match_ious(pred, true, iou_threshold) >= 0).numpy())
    score, hit = np.concatenate(scores), np.concatenate(hits)
    order = np.argsort(-score, kind="stable")
    score, hit = score[order], hit[order]
    tp = np.cumsum(hit)
    kept = np.arange(1, len(score) + 1)
    n_images = len(true_boxes)
    metrics: dict[str, Any] = {
        "precision": {},
        "recall": {},
        "false_boxes_per_image": {},
        "kept_boxes": {},
    }
    for cut in score_cuts:
        n_kept = int(np.count_nonzero(score >= np.float32(cut)))
        n_tp = int(tp[n_kept - 1]) if n_kept else 0
        key = f"{cut:.2f}"
        metrics["precision"][key] = n_tp / n_kept if n_kept else None
        metrics["recall"][key] = n_tp / n_true if n_true else None
        metrics["false_boxes_per_image"][key] = (n_kept - n_tp) / n_images if n_images else None
        metrics["kept_boxes"][key] = n_kept
    metrics.update(iou_threshold=float(iou_threshold), n_images=n_images, n_true_boxes=n_true)
    last_of_each_score = np.append(score[1:] != score[:-1], True)
    pr = {
        "precision": (tp / kept)[last_of_each_score].tolist(),
        "recall": (tp / max(n_true, 1))[last_of_each_score].tolist(),
        "thresholds": score[last_of_each_score].astype(float).tolist(),
    }
    return metrics, pr


def _greedy_match_ious(
    pred: torch.Tensor, true: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """(n,) IoU of each prediction with the true box it matches, -1 where none.

    ``pred`` (n, ≥ 4) is in the order of matching (highest score first); each prediction takes
    the still unmatched true box of highest IoU ≥ ``iou_threshold``.
    """
    matched = torch.full((len(pred),), -1.0)
    if len(pred) == 0 or len(true) == 0:
        return matched
    iou = box_iou(pred[:, :4], true)  # (pred, true)
    free = torch.ones(len(true), dtype=torch.bool)
    for i, row in enumerate(iou):
        candidates = torch.where(free & (row >= iou_threshold), row, -1.0)
        j = int(candidates.argmax())
        if candidates[j] >= 0:
            free[j] = False
            matched[i] = row[j]
    return matched
