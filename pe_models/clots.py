"""Clot candidates in 3D: the U-Net's slice masks joined into connected components."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pe_models.volume import Volume


@dataclass(frozen=True)
class _Labelled:
    """Components labelled in the box that holds every predicted clot pixel.

    ``labels`` is the (z, y, x) int array of that box (0: background, k: component k) and
    ``origin`` the (z, y, x) index of its first voxel in the volume.
    """

    labels: np.ndarray
    count: int
    origin: tuple[int, int, int]


def _label(
    shape: tuple[int, int, int], indices: Sequence[int], masks: Sequence[np.ndarray]
) -> _Labelled | None:
    """26-connected components of the masks; None when there is no clot pixel."""
    union = np.zeros(shape[1:], dtype=bool)
    for mask in masks:
        union |= mask.astype(bool)
    if not indices or not union.any():
        return None
    # Label only the box that holds every clot pixel: a whole int32 label volume of a
    # 600-slice study would take 600 MB.
    rows, columns = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    z0 = min(indices)
    stacked = np.zeros((max(indices) - z0 + 1, y1 - y0, x1 - x0), dtype=bool)
    for z, mask in zip(indices, masks, strict=True):
        stacked[z - z0] = mask[y0:y1, x0:x1].astype(bool)
    labels, count = ndimage.label(stacked, structure=np.ones((3, 3, 3), dtype=bool))
    return _Labelled(labels, count, (int(z0), int(y0), int(x0)))


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
    found = _label(volume.shape, indices, masks)
    if found is None:
        return np.zeros(0), {}
    volumes_ml = np.bincount(found.labels.ravel(), minlength=found.count + 1)[1:]
    on_slice = {
        found.origin[0] + k: set(np.unique(plane[plane > 0]).tolist())
        for k, plane in enumerate(found.labels)
        if plane.any()
    }
    return volumes_ml * volume.voxel_ml, on_slice


def components_on_truth(
    volume: Volume, indices: Sequence[int], masks: Sequence[np.ndarray], truth: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each predicted component's volume and the share of it that lies on the true clot.

    Parameters
    ----------
    volume, indices, masks
        As for :func:`clot_components`.
    truth
        (z, y, x) 0/1 true PE mask on the volume's grid.

    Returns
    -------
    volumes_ml : np.ndarray
        (n,) volume of each component in mL, as :func:`clot_components` gives them.
    on_truth : np.ndarray
        (n,) fraction (0-1) of each component's voxels inside ``truth``.
    """
    found = _label(volume.shape, indices, masks)
    if found is None:
        return np.zeros(0), np.zeros(0)
    z0, y0, x0 = found.origin
    depth, height, width = found.labels.shape
    inside = truth[z0 : z0 + depth, y0 : y0 + height, x0 : x0 + width].astype(bool)
    voxels = np.bincount(found.labels.ravel(), minlength=found.count + 1)[1:]
    on_clot = np.bincount(found.labels[inside], minlength=found.count + 1)[1:]
    return voxels * volume.voxel_ml, on_clot / voxels
