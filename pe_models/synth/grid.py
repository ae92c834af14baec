"""The phantom's voxel grid and the rasterisers that paint shapes into it.

Phantom coordinates are patient LPS in mm: x to the patient's left, y posterior, z superior,
with z = 0 at the carina. Arrays are indexed (z, y, x).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Grid:
    """A regular axial grid.

    Attributes
    ----------
    shape
        (z, y, x) voxels.
    spacing
        (z, y, x) mm.
    origin
        (x, y, z) mm of voxel [0, 0, 0] (LPS, as SimpleITK reports it).
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    @cached_property
    def _axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(  # type: ignore[return-value]
            self.origin[2 - axis]
            + np.arange(self.shape[axis], dtype=np.float32) * self.spacing[axis]
            for axis in range(3)
        )

    def axis_mm(self, axis: int) -> np.ndarray:
        """Coordinates in mm along array axis 0 (z), 1 (y) or 2 (x); do not modify."""
        return self._axes[axis]

    def index_range(self, axis: int, low_mm: float, high_mm: float) -> slice:
        """Indices along ``axis`` whose centres lie in [low_mm, high_mm], as a slice."""
        start = self.origin[2 - axis]
        first = int(np.ceil((low_mm - start) / self.spacing[axis]))
        last = int(np.floor((high_mm - start) / self.spacing[axis]))
        return slice(max(first, 0), max(min(last + 1, self.shape[axis]), 0))

    def box(
        self, low_xyz: np.ndarray, high_xyz: np.ndarray
    ) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray, np.ndarray] | None:
        """Sub-grid covering a box in mm.

        Returns
        -------
        tuple or None
            (index slices (z, y, x), z, y, x coordinate arrays shaped to broadcast), or None when
            the box misses the grid.
        """
        slices = (
            self.index_range(0, low_xyz[2], high_xyz[2]),
            self.index_range(1, low_xyz[1], high_xyz[1]),
            self.index_range(2, low_xyz[0], high_xyz[0]),
        )
        if any(s.stop <= s.start for s in slices):
            return None
        z = self.axis_mm(0)[slices[0]][:, None, None]
        y = self.axis_mm(1)[slices[1]][None, :, None]
        x = self.axis_mm(2)[slices[2]][None, None, :]
        return slices, z, y, x


@dataclass(frozen=True)
class Segment:
    """A tube from ``start`` to ``end`` (x, y, z mm), radius tapering ``radius0`` → ``radius1``.

    Attributes
    ----------
    level
        Branching generation: 0 trunk / main arteries (central), 1 lobar, 2 segmental,
        3 subsegmental, 4 and more beyond.
    side
        ``"right"``, ``"left"`` or ``"central"``.
    """

    start: np.ndarray
    end: np.ndarray
    radius0: float
    radius1: float
    level: int = 0
    side: str = "central"

    @property
    def length(self) -> float:
        """Centreline length in mm."""
        return float(np.linalg.norm(self.end - self.start))


@dataclass(frozen=True)
class TubeField:
    """Per-voxel geometry of a segment inside its bounding box.

    Attributes
    ----------
    slices
        Index slices (z, y, x) of the box in the grid.
    t
        Position along the centreline, 0 at ``start`` and 1 at ``end``.
    offset
        (3, z, y, x) vector from the closest centreline point to the voxel, mm (x, y, z order).
    distance
        Distance to the centreline in mm.
    radius
        Tube radius at ``t`` in mm.
    """

    slices: tuple[slice, slice, slice]
    t: np.ndarray
    offset: np.ndarray
    distance: np.ndarray
    radius: np.ndarray

    @property
    def inside(self) -> np.ndarray:
        """Voxels within the tube."""
        return self.distance <= self.radius


def tube_field(grid: Grid, segment: Segment, margin_mm: float = 0.0) -> TubeField | None:
    """Geometry of ``segment`` on the voxels of its bounding box (padded by ``margin_mm``)."""
    reach = max(segment.radius0, segment.radius1) + margin_mm
    found = grid.box(
        np.minimum(segment.start, segment.end) - reach,
        np.maximum(segment.start, segment.end) + reach,
    )
    if found is None:
        return None
    slices, z, y, x = found
    direction = (segment.end - segment.start).astype(np.float32)
    length_sq = max(float(direction @ direction), 1e-6)
    rel = (x - segment.start[0], y - segment.start[1], z - segment.start[2])
    t = np.clip(
        (rel[0] * direction[0] + rel[1] * direction[1] + rel[2] * direction[2]) / length_sq, 0, 1
    )
    offset = np.stack(
        [rel[0] - t * direction[0], rel[1] - t * direction[1], rel[2] - t * direction[2]]
    )
    distance = np.sqrt((offset**2).sum(axis=0))
    radius = segment.radius0 + t * (segment.radius1 - segment.radius0)
    return TubeField(slices, t, offset, distance, radius)


def paint_tube(
    labels: np.ndarray,
    grid: Grid,
    segment: Segment,
    value: int,
    *,
    wall_mm: float = 0.0,
    wall_value: int | None = None,
) -> None:
    """Paint a tube (and optionally a wall around it) into a label volume in place."""
    field = tube_field(grid, segment, wall_mm)
    if field is None:
        return
    region = labels[field.slices]
    if wall_mm > 0 and wall_value is not None:
        region[(field.distance <= field.radius + wall_mm) & (field.distance > field.radius)] = (
            wall_value
        )
    region[field.inside] = value


def ellipsoid(
    grid: Grid, centre: np.ndarray, semi_axes: np.ndarray
) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """Voxels inside an axis-aligned ellipsoid: (box slices, boolean mask in the box)."""
    found = grid.box(centre - semi_axes, centre + semi_axes)
    if found is None:
        return None
    slices, z, y, x = found
    inside = (
        ((x - centre[0]) / semi_axes[0]) ** 2
        + ((y - centre[1]) / semi_axes[1]) ** 2
        + ((z - centre[2]) / semi_axes[2]) ** 2
    ) <= 1.0
    return slices, inside
