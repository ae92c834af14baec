"""Clot candidates in 3D: the U-Net's slice masks joined into connected components."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from pe_models.volume import Volume


def clot_components(
    volume: Volume, indices: Sequence[int], masks: Sequence[np.ndarray]
) -> tuple[np.ndarray, dict[int, set[int]]]:
    """Join the predicted clot pixels of a study into 3D (26-connected) components.

    Parameters
    ----------
    volume
        The study (for its voxel size).
    indices
        z index of each mask; slices not given count as empty, so masks of slices that are
        not neighbours in the volume are never joined.
    masks
        (y, x) 0/1 masks in original pixels, one per index.

    Returns
    -------
    volumes_ml : np.ndarray
        (n,) volume of each component in mL; component ``k`` is ``volumes_ml[k - 1]``.
    on_slice : dict
        z index → the components with pixels on that slice (only slices that have some).
    """
    union = np.zeros(volume.shape[1:], dtype=bool)
    for mask in masks:
        union |= mask.astype(bool)
    if not indices or not union.any():
        return np.zeros(0), {}
    # Label only the box that holds every clot pixel: a whole int32 label volume of a
    # 600-slice study would take 600 MB.
    rows, columns = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    z0 = min(indices)
    stacked = np.zeros((max(indices) - z0 + 1, y1 - y0, x1 - x0), dtype=bool)
    for z, mask in zip(indices, masks, strict=True):
        stacked[z - z0] = mask[y0:y1, x0:x1].astype(bool)
    labels, count = ndimage.label(stacked, structure=np.ones((3, 3, 3), dtype=bool))
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    volumes_ml = np.bincount(labels.ravel(), minlength=count + 1)[1:] * voxel_ml
    on_slice = {
        z0 + k: set(np.unique(plane[plane > 0]).tolist())
        for k, plane in enumerate(labels)
        if plane.any()
    }
    return volumes_ml, on_slice
