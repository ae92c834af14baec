"""Slices to model input tensors, as a bundle's config describes: crop, windows, resize."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling

from pe_models.preprocess.lung_crop import (
    CropBox,
    dynamic_lung_crop,
    fixed_center_crop,
    thorax_crop,
)
from pe_models.preprocess.stack import WindowStack

CROP_MODES = ("dynamic", "thorax", "fixed", "none")


def crop_box(hu_slice: np.ndarray, pixel_spacing_mm: tuple[float, float], mode: str) -> CropBox:
    """The crop of one (y, x) slice for ``mode`` (``dynamic``, ``thorax``, ``fixed``, ``none``)."""
    if mode == "dynamic":
        return dynamic_lung_crop(hu_slice, pixel_spacing_mm)
    if mode == "thorax":
        return thorax_crop(hu_slice, pixel_spacing_mm)
    if mode == "fixed":
        return fixed_center_crop(hu_slice.shape)
    if mode == "none":
        return CropBox(0, hu_slice.shape[0], 0, hu_slice.shape[1], "none")
    raise ValueError(f"unknown crop mode {mode!r}; valid: {', '.join(CROP_MODES)}")


def model_input(
    hu_slices: Sequence[np.ndarray],
    crops: Sequence[CropBox],
    windows: WindowStack,
    size: int,
) -> torch.Tensor:
    """Crop, window and resize slices into a batch.

    Parameters
    ----------
    hu_slices
        (y, x) HU slices.
    crops
        One crop per slice, in original pixels.
    windows
        The channel layout and normalisation.
    size
        Side of the square output in pixels.

    Returns
    -------
    torch.Tensor
        float32 (B, C, size, size); bilinear resize with pixel-centre alignment (the inverse
        of :meth:`CropBox.mask_to_original`).
    """
    resized = []
    for hu_slice, crop in zip(hu_slices, crops, strict=True):
        channels = torch.from_numpy(windows(crop.apply(hu_slice)))[None]
        resized.append(
            F.interpolate(
                channels, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
        )
    return torch.cat(resized)
