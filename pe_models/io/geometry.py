"""Slice ordering and voxel geometry of a DICOM series, from positions, never file names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pe_models.io.dicom_header import DicomHeader
from pe_models.io.errors import DuplicateSliceError, InconsistentSeriesError

ORIENTATION_TOLERANCE = 1e-3
"""Largest difference between direction cosines still taken as the same orientation."""

DUPLICATE_TOLERANCE_MM = 0.01
"""Slices closer than this along the normal are at the same position."""

IRREGULAR_SPACING_FRACTION = 0.05
"""Slice steps differing from the median by more than this fraction are reported."""

GAP_FACTOR = 1.5
"""A step longer than this many median steps means slices are missing."""

TILT_WARNING_DEG = 0.5
"""Angle between the slice normal and the slice-to-slice step above which tilt is reported."""

DEFAULT_SLICE_STEP_MM = 1.0
"""Slice step assumed for a single image that states no thickness."""


@dataclass(frozen=True)
class SeriesGeometry:
    """Geometry of a series sorted along its normal.

    Attributes
    ----------
    order
        Indices into the input headers, in volume z order.
    spacing
        (z, y, x) voxel size in mm.
    origin
        LPS position (x, y, z) in mm of the first sorted slice's first pixel.
    direction
        3 × 3 direction cosines, columns = array axes (x, y, z), as SimpleITK reports them.
    orientation
        ``"axial"``, ``"coronal"``, ``"sagittal"`` or ``"oblique"``.
    warnings
        Geometry problems a reader should see.
    """

    order: tuple[int, ...]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    orientation: str
    warnings: tuple[str, ...]


def orientation_name(normal: np.ndarray) -> str:
    """Name the plane whose normal (x, y, z LPS) is given."""
    dominant = int(np.argmax(np.abs(normal)))
    if abs(normal[dominant]) < 0.9:
        return "oblique"
    return ("sagittal", "coronal", "axial")[dominant]


def _check_same_frame(headers: Sequence[DicomHeader]) -> None:
    first = headers[0]
    for header in headers[1:]:
        if (header.rows, header.columns) != (first.rows, first.columns):
            raise InconsistentSeriesError(
                header.path,
                f"image is {header.rows}×{header.columns} but {first.path.name} is "
                f"{first.rows}×{first.columns} in the same series",
            )
        if header.orientation is not None and first.orientation is not None:
            difference = np.abs(np.subtract(header.orientation, first.orientation)).max()
            if difference > ORIENTATION_TOLERANCE:
                raise InconsistentSeriesError(
                    header.path,
                    f"orientation {header.orientation} differs from {first.path.name} "
                    f"{first.orientation} in the same series",
                )


def series_geometry(headers: Sequence[DicomHeader]) -> SeriesGeometry:
    """Sort the images of one series along the slice normal and derive the voxel geometry.

    Axial series run inferior to superior; other planes run along the positive dominant
    patient axis. The z spacing comes from the positions, not from SliceThickness.

    Raises
    ------
    InconsistentSeriesError
        Images differ in size or orientation, or several images have no position.
    DuplicateSliceError
        Two different images lie at the same position.
    """
    _check_same_frame(headers)
    first = headers[0]
    warnings: list[str] = []
    orientation = first.orientation or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    row_cosines = np.array(orientation[:3])
    column_cosines = np.array(orientation[3:])
    normal = np.cross(row_cosines, column_cosines)
    dominant = int(np.argmax(np.abs(normal)))
    if normal[dominant] < 0:
        normal = -normal
    pixel_spacing = first.pixel_spacing or (1.0, 1.0)
    if first.pixel_spacing is None:
        warnings.append(f"{first.path.name}: no PixelSpacing; 1 mm pixels assumed")
    if first.orientation is None:
        warnings.append(f"{first.path.name}: no ImageOrientationPatient; axial assumed")

    missing_position = [h for h in headers if h.position is None]
    if missing_position and len(headers) > 1:
        raise InconsistentSeriesError(
            missing_position[0].path,
            "no ImagePositionPatient, so the slices of this series cannot be ordered",
        )
    if first.position is None:
        warnings.append(f"{first.path.name}: no ImagePositionPatient; origin (0, 0, 0) assumed")
    positions = np.array([h.position or (0.0, 0.0, 0.0) for h in headers])
    along_normal = positions @ normal
    order = np.argsort(along_normal, kind="stable")
    sorted_along = along_normal[order]

    if len(headers) > 1:
        steps = np.diff(sorted_along)
        duplicate = int(np.argmin(steps))
        if steps[duplicate] < DUPLICATE_TOLERANCE_MM:
            a, b = headers[order[duplicate]], headers[order[duplicate + 1]]
            raise DuplicateSliceError(
                b.path,
                f"lies at the same position ({sorted_along[duplicate]:.2f} mm along the "
                f"normal) as {a.path.name}; the folder may mix two reconstructions",
            )
        step = float(np.median(steps))
        warnings.extend(_spacing_warnings(steps, sorted_along, step))
        travel = positions[order[-1]] - positions[order[0]]
        tilt = np.degrees(np.arccos(np.clip(travel @ normal / np.linalg.norm(travel), -1, 1)))
        if tilt > TILT_WARNING_DEG or abs(first.gantry_tilt) > TILT_WARNING_DEG:
            shown = max(tilt, abs(first.gantry_tilt))
            warnings.append(
                f"gantry tilt of {shown:.1f}°: slices are sheared, positions in mm are approximate"
            )
    else:
        step = first.spacing_between_slices or first.slice_thickness or DEFAULT_SLICE_STEP_MM
        if not (first.spacing_between_slices or first.slice_thickness):
            warnings.append(f"{first.path.name}: single image without thickness; 1 mm assumed")

    direction = np.column_stack([row_cosines, column_cosines, normal])
    origin = positions[order[0]]
    return SeriesGeometry(
        order=tuple(int(i) for i in order),
        spacing=(float(step), float(pixel_spacing[0]), float(pixel_spacing[1])),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=direction,
        orientation=orientation_name(normal) if first.orientation is not None else "axial",
        warnings=tuple(warnings),
    )


def _spacing_warnings(steps: np.ndarray, sorted_along: np.ndarray, step: float) -> list[str]:
    warnings = []
    gaps = np.flatnonzero(steps > GAP_FACTOR * step)
    for gap in gaps:
        missing = round(steps[gap] / step) - 1
        warnings.append(
            f"about {missing} slice(s) missing between {sorted_along[gap]:.2f} and "
            f"{sorted_along[gap + 1]:.2f} mm"
        )
    regular = np.delete(steps, gaps)
    if regular.size and np.abs(regular - step).max() > IRREGULAR_SPACING_FRACTION * step:
        warnings.append(
            f"irregular slice spacing from {steps.min():.3f} to {steps.max():.3f} mm "
            f"(median {step:.3f} mm is used)"
        )
    return warnings
