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
from pe_models.volume import Volume

CROP_MODES = ("dynamic", "thorax", "fixed", "none")

CONTEXT_WINDOW = "vascular"
"""Window of the neighbour-slice channels of a 2.5D input. A clot is a filling defect in the
contrast column and runs through many slices; a vessel that merely leaves the slice (partial
volume makes its cut look dark, like a clot) is gone a few mm on."""


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


def context_slices(
    z: int, n_slices: int, z_spacing_mm: float, context_mm: float
) -> tuple[int, int]:
    """The slices about ``context_mm`` before and after slice ``z`` (lower, higher index).

    At least one slice away; clamped to the ends of the stack (an end slice is its own
    neighbour there).
    """
    step = max(1, round(context_mm / z_spacing_mm))
    return max(0, z - step), min(n_slices - 1, z + step)


def channel_names(windows: WindowStack, context_mm: float) -> tuple[str, ...]:
    """A name per model input channel, in order (see :func:`model_input`)."""
    if not context_mm:
        return windows.channel_windows
    return (
        *windows.channel_windows,
        f"{CONTEXT_WINDOW} {-context_mm:g} mm",
        f"{CONTEXT_WINDOW} +{context_mm:g} mm",
    )


def model_input(
    volume: Volume,
    slices: Sequence[int],
    crops: Sequence[CropBox],
    windows: WindowStack,
    size: int,
    *,
    context_mm: float = 0.0,
) -> torch.Tensor:
    """Crop, window and resize slices into a batch.

    Parameters
    ----------
    volume
        The (z, y, x) HU volume; its slice spacing places the context slices.
    slices
        z indices of the slices to prepare.
    crops
        One crop per slice, in original pixels.
    windows
        The channel layout and normalisation.
    size
        Side of the square output in pixels.
    context_mm
        0: one slice per input (2D). Otherwise two more channels (2.5D): the slices about this
        many mm before and after along z, in the ``CONTEXT_WINDOW``, under the same crop.

    Returns
    -------
    torch.Tensor
        float32 (B, C, size, size), C = windows + 2 context channels if any; bilinear resize
        with pixel-centre alignment (the inverse of :meth:`CropBox.mask_to_original`).
    """
    context = WindowStack((CONTEXT_WINDOW,), normalisation=windows.normalisation)
    resized = []
    hu = volume.hu
    for z, crop in zip(slices, crops, strict=True):
        channels = windows(crop.apply(hu[z]))
        if context_mm:
            before, after = context_slices(z, hu.shape[0], volume.spacing[0], context_mm)
            channels = np.concatenate(
                [channels, context(crop.apply(hu[before])), context(crop.apply(hu[after]))]
            )
        resized.append(
            F.interpolate(
                torch.from_numpy(channels)[None],
                size=(size, size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        )
    return torch.cat(resized)
