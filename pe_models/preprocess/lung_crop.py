"""Lung cropping: seed 2's dynamic lung crop (fixed central crop as fallback) and a thorax crop.

Seed 2 binarises the slice so that the lungs become "two huge black spaces in the middle",
crops their bounding box and fills the original pixels back in. Here the black spaces are the
air regions (< -400 HU) that do not touch the image border (outside air) and lie inside the
body; the box is padded by a margin so pleura and thin effusions at the lung edge stay in view.
Large dense regions (consolidation, collapse, big effusions) are not air and fall outside it:
the thorax crop grows the box to the inside of the chest wall so they stay in view.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

LUNG_AIR_MAX_HU = -400
"""Lung parenchyma and airways are below this."""

BODY_MIN_HU = -500
"""Soft tissue, bone and contrast are above this."""

MIN_LUNG_AREA_MM2 = 400.0
"""A slice whose largest inner air region is smaller than this has no usable lung."""

SECONDARY_AREA_FRACTION = 0.1
"""Air regions at least this fraction of the largest one are kept (the other lung)."""

BODY_OPENING_MM = 3.0
"""Opening radius that detaches the patient from thin table shells and cushions."""

ANALYSIS_PIXEL_MM = 2.0
"""Slices are subsampled to about this pixel size to find the lungs (box accuracy ~2 mm)."""

DEFAULT_MARGIN_MM = 10.0
"""Padding added around the lungs' bounding box."""

CHEST_WALL_MM = 15.0
"""Thickness the thorax crop takes off each side of the body's box."""

FIXED_CROP_HW_AT_512 = (180, 300)
"""Seed 2's fixed central crop, (height, width) in pixels of a 512 × 512 slice."""


@dataclass(frozen=True)
class CropBox:
    """A crop of a slice, half-open pixel bounds in original (row, column) coordinates.

    Attributes
    ----------
    y0, y1, x0, x1
        Rows ``y0:y1`` and columns ``x0:x1`` of the original slice.
    method
        ``"dynamic"`` when lungs were found, ``"fixed"`` for the central fallback.
    """

    y0: int
    y1: int
    x0: int
    x1: int
    method: str = "dynamic"

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the crop in pixels."""
        return self.y1 - self.y0, self.x1 - self.x0

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Crop the last two axes (y, x) of ``image``; returns a view."""
        return image[..., self.y0 : self.y1, self.x0 : self.x1]

    def union(self, other: CropBox) -> CropBox:
        """Smallest box holding both; dynamic only if both are."""
        method = "dynamic" if self.method == other.method == "dynamic" else "fixed"
        return CropBox(
            min(self.y0, other.y0),
            max(self.y1, other.y1),
            min(self.x0, other.x0),
            max(self.x1, other.x1),
            method,
        )

    def boxes_to_original(self, boxes: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
        """Map boxes predicted on the resized crop back to original pixel coordinates.

        Parameters
        ----------
        boxes
            (N, 4+) with x0, y0, x1, y1 first (x = column, y = row) in the model input of size
            ``input_hw``; further columns (scores) are kept as they are.
        input_hw
            (height, width) the crop was resized to before the model.

        Returns
        -------
        np.ndarray
            float (N, 4+) in original slice pixels.
        """
        mapped = np.array(boxes, dtype=float, copy=True).reshape(-1, np.shape(boxes)[-1])
        scale_y = self.shape[0] / input_hw[0]
        scale_x = self.shape[1] / input_hw[1]
        mapped[:, [0, 2]] = mapped[:, [0, 2]] * scale_x + self.x0
        mapped[:, [1, 3]] = mapped[:, [1, 3]] * scale_y + self.y0
        return mapped

    def mask_to_original(
        self, mask: np.ndarray, original_hw: tuple[int, int], *, order: int = 0
    ) -> np.ndarray:
        """Resize a (h, w) map predicted on the crop and paste it into a full slice.

        Parameters
        ----------
        mask
            (h, w) labels (``order=0``) or probabilities (``order=1``) on the model input.
        original_hw
            (height, width) of the original slice.
        order
            Spline order of the resize: 0 for labels, 1 for probabilities.

        Returns
        -------
        np.ndarray
            (height, width) map, zero outside the crop, same dtype as ``mask``.
        """
        # Sample the model map at the centre of every crop pixel (pixel-centre alignment).
        rows = (np.arange(self.shape[0]) + 0.5) * mask.shape[0] / self.shape[0] - 0.5
        columns = (np.arange(self.shape[1]) + 0.5) * mask.shape[1] / self.shape[1] - 0.5
        grid = np.meshgrid(rows, columns, indexing="ij")
        resized = ndimage.map_coordinates(mask, grid, order=order, mode="nearest")
        full = np.zeros(original_hw, dtype=mask.dtype)
        full[self.y0 : self.y1, self.x0 : self.x1] = resized
        return full


def fixed_center_crop(shape_hw: tuple[int, int]) -> CropBox:
    """Seed 2's fixed central crop (300 × 180 px of a 512² slice), scaled to ``shape_hw``."""
    height = round(FIXED_CROP_HW_AT_512[0] * shape_hw[0] / 512)
    width = round(FIXED_CROP_HW_AT_512[1] * shape_hw[1] / 512)
    y0 = (shape_hw[0] - height) // 2
    x0 = (shape_hw[1] - width) // 2
    return CropBox(y0, y0 + height, x0, x0 + width, "fixed")


def lung_air_mask(
    hu_slice: np.ndarray, pixel_spacing_mm: tuple[float, float], *, body: np.ndarray | None = None
) -> np.ndarray:
    """The "black spaces in the middle": air inside the body large enough to be lung.

    Parameters
    ----------
    hu_slice
        (y, x) HU.
    pixel_spacing_mm
        (row, column) pixel size in mm.
    body
        The slice's :func:`body_mask`, when the caller already has it.

    Returns
    -------
    np.ndarray
        bool (y, x); empty when no region reaches ``MIN_LUNG_AREA_MM2``.
    """
    pixel_area = pixel_spacing_mm[0] * pixel_spacing_mm[1]
    if body is None:
        body = body_mask(hu_slice, pixel_spacing_mm)
    air = hu_slice < LUNG_AIR_MAX_HU
    labels, count = ndimage.label(air)
    if count == 0:
        return np.zeros_like(air)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    areas = ndimage.sum_labels(np.ones_like(air), labels, index=np.arange(1, count + 1))
    inside = ndimage.sum_labels(body, labels, index=np.arange(1, count + 1))
    candidate = (inside >= 0.5 * areas) & ~np.isin(np.arange(1, count + 1), border)
    areas = np.where(candidate, areas, 0)
    largest = areas.max()
    if largest * pixel_area < MIN_LUNG_AREA_MM2:
        return np.zeros_like(air)
    keep = np.flatnonzero(areas >= SECONDARY_AREA_FRACTION * largest) + 1
    return np.isin(labels, keep)


def body_mask(hu_slice: np.ndarray, pixel_spacing_mm: tuple[float, float]) -> np.ndarray:
    """The patient's body on a (y, x) HU slice, holes filled, table and cushions detached."""
    opening_px = max(1, round(BODY_OPENING_MM / min(pixel_spacing_mm)))
    tissue = ndimage.binary_opening(hu_slice > BODY_MIN_HU, iterations=opening_px)
    return ndimage.binary_fill_holes(largest_component(tissue))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected component of a boolean mask (the mask itself when empty)."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def dynamic_lung_crop(
    hu_slice: np.ndarray,
    pixel_spacing_mm: tuple[float, float],
    *,
    margin_mm: float = DEFAULT_MARGIN_MM,
) -> CropBox:
    """Crop box around both lungs of one slice, or seed 2's fixed crop if none is found.

    Parameters
    ----------
    hu_slice
        (y, x) HU.
    pixel_spacing_mm
        (row, column) pixel size in mm.
    margin_mm
        Padding around the lungs' bounding box.

    Returns
    -------
    CropBox
        ``method="dynamic"`` around the lungs, or ``method="fixed"`` (fallback).
    """
    coarse, coarse_spacing, stride = _analysis_grid(hu_slice, pixel_spacing_mm)
    lungs = lung_air_mask(coarse, coarse_spacing)
    if not lungs.any():
        return fixed_center_crop(hu_slice.shape)
    return _grown_box(lungs, stride, margin_mm, pixel_spacing_mm, hu_slice.shape)


def _analysis_grid(
    hu_slice: np.ndarray, pixel_spacing_mm: tuple[float, float]
) -> tuple[np.ndarray, tuple[float, float], int]:
    """The slice subsampled to about ``ANALYSIS_PIXEL_MM``: (slice, its spacing, stride)."""
    stride = max(1, int(ANALYSIS_PIXEL_MM // min(pixel_spacing_mm)))
    coarse_spacing = (pixel_spacing_mm[0] * stride, pixel_spacing_mm[1] * stride)
    return hu_slice[::stride, ::stride], coarse_spacing, stride


def _grown_box(
    coarse_mask: np.ndarray,
    stride: int,
    grow_mm: float,
    pixel_spacing_mm: tuple[float, float],
    shape_hw: tuple[int, int],
) -> CropBox:
    """The slice-pixel box of a non-empty analysis-grid mask, grown by ``grow_mm`` per side.

    A negative ``grow_mm`` shrinks it; the box is kept inside the slice.
    """
    rows = np.flatnonzero(coarse_mask.any(axis=1)) * stride
    columns = np.flatnonzero(coarse_mask.any(axis=0)) * stride
    grow_y = round(grow_mm / pixel_spacing_mm[0])
    grow_x = round(grow_mm / pixel_spacing_mm[1])
    return CropBox(
        max(0, int(rows[0]) - grow_y),
        min(shape_hw[0], int(rows[-1]) + stride + grow_y),
        max(0, int(columns[0]) - grow_x),
        min(shape_hw[1], int(columns[-1]) + stride + grow_x),
    )


def thorax_crop(
    hu_slice: np.ndarray,
    pixel_spacing_mm: tuple[float, float],
    *,
    chest_wall_mm: float = CHEST_WALL_MM,
    margin_mm: float = DEFAULT_MARGIN_MM,
) -> CropBox:
    """The lung box grown to the inside of the chest wall, so non-aerated lung stays in view.

    The dynamic lung crop boxes *aerated* lung; where the dependent lung is consolidated,
    collapsed or under an effusion (infarcts among them) that box ends at the last aerated
    row and cuts off clots lying in the dense lung. This crop is the union of that box and the
    body's box shrunk by ``chest_wall_mm`` on every side.

    Parameters
    ----------
    hu_slice
        (y, x) HU.
    pixel_spacing_mm
        (row, column) pixel size in mm.
    chest_wall_mm
        Thickness taken off the body's box on each side (skin, fat, muscle, ribs).
    margin_mm
        Padding around the aerated lungs' box.

    Returns
    -------
    CropBox
        ``method="thorax"``; seed 2's fixed crop when no body is found.
    """
    coarse, coarse_spacing, stride = _analysis_grid(hu_slice, pixel_spacing_mm)
    body = body_mask(coarse, coarse_spacing)
    if not body.any():  # no body means no lungs either
        return fixed_center_crop(hu_slice.shape)
    lung_mask = lung_air_mask(coarse, coarse_spacing, body=body)
    lungs = (
        _grown_box(lung_mask, stride, margin_mm, pixel_spacing_mm, hu_slice.shape)
        if lung_mask.any()
        else None
    )
    inner = _grown_box(body, stride, -chest_wall_mm, pixel_spacing_mm, hu_slice.shape)
    if inner.y1 <= inner.y0 or inner.x1 <= inner.x0:  # a body thinner than two chest walls
        return lungs or fixed_center_crop(hu_slice.shape)
    box = inner if lungs is None else lungs.union(inner)  # no lungs: the body's box
    return replace(box, method="thorax")


def study_lung_crop(
    hu: np.ndarray,
    pixel_spacing_mm: tuple[float, float],
    *,
    margin_mm: float = DEFAULT_MARGIN_MM,
) -> CropBox:
    """One crop for a whole volume: the union of the per-slice lung boxes.

    Steadier than per-slice boxes when slices near the apex or the bases have little lung.

    Parameters
    ----------
    hu
        (z, y, x) HU.
    pixel_spacing_mm
        (row, column) pixel size in mm.

    Returns
    -------
    CropBox
        Union of the dynamic boxes, or the fixed crop when no slice shows lung.
    """
    boxes = [
        box
        for box in (dynamic_lung_crop(s, pixel_spacing_mm, margin_mm=margin_mm) for s in hu)
        if box.method == "dynamic"
    ]
    if not boxes:
        return fixed_center_crop(hu.shape[1:])
    union = boxes[0]
    for box in boxes[1:]:
        union = union.union(box)
    return union
