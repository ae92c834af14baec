"""Clot pieces and their boxes found, by size: where the misses are, which IoU and AP hide."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy import ndimage

from pe_models.metrics._checks import _boxes, _same_length

PIECE_SIZE_BINS_MM2 = (5.0, 15.0, 50.0, 150.0)
"""Upper bounds (mm², in-plane) of the piece size classes; the last class is open. At 0.7 mm
pixels: up to 10, 30, 100 and 300 pixels."""

EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


MAX_DETECTIONS_PER_IMAGE = 100
"""As COCO and torchmetrics' ``MeanAveragePrecision`` count them."""


def _bin_names() -> list[str]:
    bounds = [0.0, *PIECE_SIZE_BINS_MM2]
    names = [f"{lo:g}-{hi:g} mm²" for lo, hi in pairwise(bounds)]
    return [*names, f"> {PIECE_SIZE_BINS_MM2[-1]:g} mm²"]


def _coco_area_ranges() -> list[list[float]]:
    """The size classes as COCO area ranges, ``lo < area <= hi`` as pieces are counted.

    pycocotools includes both ends of a range, so each lower end moves up by one ulp.
    """
    bounds = [0.0, *PIECE_SIZE_BINS_MM2, float("inf")]
    return [[float(np.nextafter(lo, np.inf)) if lo else 0.0, hi] for lo, hi in pairwise(bounds)]


def clot_pieces_by_size(
    pred_masks: Sequence[ArrayLike],
    true_masks: Sequence[ArrayLike],
    pixel_areas_mm2: Sequence[float],
    views: Sequence[tuple[int, int, int, int]] | None = None,
) -> dict[str, Any]:
    """How many true clot pieces a segmenter finds, by in-plane size.

    A piece is a 2D 8-connected component of a slice's true mask; it is found when any
    predicted pixel lies on it. A piece of which less than half lies in its slice's view (the
    crop the model saw) is counted apart as out of view, not as missed.

    Parameters
    ----------
    pred_masks, true_masks
        Equal-length sequences of (y, x) masks of the same slices (nonzero is foreground).
    pixel_areas_mm2
        In-plane pixel area of each slice (row × column spacing, mm²).
    views
        Optional (y0, y1, x0, x1) rectangle the model saw on each slice (half-open, pixels).

    Returns
    -------
    dict
        ``pieces``, ``found``, ``piece_recall`` (found / pieces, None if none) and
        ``pixel_recall`` (true pixels predicted / true pixels), each a dict keyed by size class
        (:data:`PIECE_SIZE_BINS_MM2`); ``pieces_out_of_view`` and
        ``pixels_out_of_view_share`` (of all true pixels).
    """
    _same_length(pred_masks, true_masks, "pred_masks and true_masks")
    _same_length(pred_masks, pixel_areas_mm2, "pred_masks and pixel_areas_mm2")
    if views is not None:
        _same_length(pred_masks, views, "pred_masks and views")
    n_bins = len(PIECE_SIZE_BINS_MM2) + 1
    pieces, found = np.zeros(n_bins, int), np.zeros(n_bins, int)
    pixels, pixels_found = np.zeros(n_bins, int), np.zeros(n_bins, int)
    out_of_view = out_of_view_px = total_px = 0
    for k, (pred_mask, true_mask) in enumerate(zip(pred_masks, true_masks, strict=True)):
        pred, true = np.asarray(pred_mask) != 0, np.asarray(true_mask) != 0
        if pred.shape != true.shape:
            raise ValueError(f"slice {k}: prediction {pred.shape} and truth {true.shape} differ")
        labels, count = ndimage.label(true, structure=EIGHT_NEIGHBOURS)
        if not count:
            continue
        index = np.arange(1, count + 1)
        sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
        hits = np.bincount(labels[pred], minlength=count + 1)[1:]
        seen = sizes
        if views is not None:
            y0, y1, x0, x1 = views[k]
            view = np.zeros(true.shape, dtype=bool)
            view[y0:y1, x0:x1] = True
            seen = np.asarray(ndimage.sum_labels(view, labels, index), dtype=int)
        total_px += int(sizes.sum())
        hidden = seen * 2 < sizes
        out_of_view += int(hidden.sum())
        out_of_view_px += int(sizes[hidden].sum())
        classes = np.searchsorted(PIECE_SIZE_BINS_MM2, sizes * float(pixel_areas_mm2[k]))
        for c, size, hit in zip(classes[~hidden], sizes[~hidden], hits[~hidden], strict=True):
            pieces[c] += 1
            found[c] += hit > 0
            pixels[c] += size
            pixels_found[c] += hit
    names = _bin_names()

    def ratio(numerator: np.ndarray, denominator: np.ndarray) -> dict[str, float | None]:
        return {
            name: float(n / d) if d else None
            for name, n, d in zip(names, numerator, denominator, strict=True)
        }

    return {
        "pieces": dict(zip(names, pieces.tolist(), strict=True)),
        "found": dict(zip(names, found.tolist(), strict=True)),
        "piece_recall": ratio(found, pieces),
        "pixel_recall": ratio(pixels_found, pixels),
        "pieces_out_of_view": out_of_view,
        "pixels_out_of_view_share": out_of_view_px / total_px if total_px else None,
    }


def boxes_by_size(
    pred_boxes: Sequence[ArrayLike],
    true_boxes: Sequence[ArrayLike],
    pixel_areas_mm2: Sequence[float],
    *,
    iou_threshold: float = 0.5,
) -> dict[str, Any]:
    """A localiser's AP at one IoU and its recall, by the in-plane size of the true boxes.

    COCO's area ranges with our size classes (:data:`PIECE_SIZE_BINS_MM2`, applied to box
    area, width × height): within a class, a true box of another size is ignored (a
    prediction matched to it neither helps nor hurts) and so is an unmatched prediction of
    another size. pycocotools computes it, at most 100 detections per image.

    Parameters
    ----------
    pred_boxes
        Per image, (n, 5) ``x0, y0, x1, y1, score`` in pixels (an empty array for none).
    true_boxes
        Per image, (m, 4) ``x0, y0, x1, y1`` in pixels.
    pixel_areas_mm2
        In-plane pixel area of each image (row × column spacing, mm²).
    iou_threshold
        IoU at or above which a prediction matches a true box.

    Returns
    -------
    dict
        ``true_boxes`` (count), ``ap`` (average precision at ``iou_threshold``; ``None`` for a
        class without true boxes) and ``max_recall`` (share of true boxes matched by a
        prediction of any score), each a dict keyed by size class; and ``iou_threshold``.
    """
    _same_length(pred_boxes, true_boxes, "pred_boxes and true_boxes (images)")
    _same_length(pred_boxes, pixel_areas_mm2, "pred_boxes and pixel_areas_mm2")
    truth: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    for k, (pred_raw, true_raw) in enumerate(zip(pred_boxes, true_boxes, strict=True)):
        area = float(pixel_areas_mm2[k])
        pred = _boxes(pred_raw, 5, f"pred_boxes[{k}]")
        best = pred[np.argsort(-pred[:, 4], kind="stable")][:MAX_DETECTIONS_PER_IMAGE]
        for box in _boxes(true_raw, 4, f"true_boxes[{k}]"):
            truth.append(_coco_box(len(truth) + 1, k, box, area))  # COCO ids start at 1
        for box in best:
            found.append({**_coco_box(len(found) + 1, k, box[:4], area), "score": float(box[4])})
    names = _bin_names()
    areas = np.array([t["area"] for t in truth])
    counts = np.bincount(np.searchsorted(PIECE_SIZE_BINS_MM2, areas), minlength=len(names))
    ap: dict[str, float | None] = dict.fromkeys(names)
    max_recall: dict[str, float | None] = dict.fromkeys(names)
    if truth:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            images = len(pred_boxes)
            evaluation = COCOeval(_coco(truth, images), _coco(found, images), iouType="bbox")
            evaluation.params.iouThrs = np.array([iou_threshold])
            evaluation.params.areaRng = _coco_area_ranges()
            evaluation.params.areaRngLbl = names
            evaluation.params.maxDets = [MAX_DETECTIONS_PER_IMAGE]
            evaluation.evaluate()
            evaluation.accumulate()
        precision = evaluation.eval["precision"][0, :, 0, :, 0]  # (recall points, classes)
        recall = evaluation.eval["recall"][0, 0, :, 0]
        for c, name in enumerate(names):
            if counts[c]:
                ap[name] = round(float(precision[:, c].mean()), 7)
                max_recall[name] = round(float(recall[c]), 7)
    return {
        "true_boxes": dict(zip(names, counts.tolist(), strict=True)),
        "ap": ap,
        "max_recall": max_recall,
        "iou_threshold": float(iou_threshold),
    }


def _coco_box(index: int, image: int, box: np.ndarray, pixel_mm2: float) -> dict[str, Any]:
    width, height = float(box[2] - box[0]), float(box[3] - box[1])
    return {
        "id": index,
        "image_id": image,
        "category_id": 1,
        "bbox": [float(box[0]), float(box[1]), width, height],
        "area": width * height * pixel_mm2,
        "iscrowd": 0,
    }


def _coco(annotations: list[dict[str, Any]], n_images: int) -> COCO:
    coco = COCO()
    coco.dataset = {
        "images": [{"id": k} for k in range(n_images)],
        "categories": [{"id": 1, "name": "pe"}],
        "annotations": annotations,
    }
    coco.createIndex()
    return coco
