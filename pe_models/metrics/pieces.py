"""Clot pieces found, by size: where a segmenter's misses are, which IoU alone hides."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from pe_models.metrics._checks import _same_length

PIECE_SIZE_BINS_MM2 = (5.0, 15.0, 50.0, 150.0)
"""Upper bounds (mm², in-plane) of the piece size classes; the last class is open. At 0.7 mm
pixels: up to 10, 30, 100 and 300 pixels."""

EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def _bin_names() -> list[str]:
    bounds = [0.0, *PIECE_SIZE_BINS_MM2]
    names = [f"{lo:g}-{hi:g} mm²" for lo, hi in pairwise(bounds)]
    return [*names, f"> {PIECE_SIZE_BINS_MM2[-1]:g} mm²"]


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
