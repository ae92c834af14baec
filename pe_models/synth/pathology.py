"""Pulmonary emboli inside the arterial tree, and other lung disease.

Clot counts, volumes and lengths are drawn to match the 35 real FUMPE PE masks (Masoudi et al.,
Scientific Data 2018, CC BY 4.0) in ``../shared/data/fumpe``, measured with
``benchmarks/phantom_realism.py --fumpe-stats`` (3-D connected clots of at least 1 mm³):

- clots per patient: median 2, quartiles 1-3, 95th percentile 6;
- clot volume: median 1.07 mL, quartiles 0.30-4.97 mL, 5th-95th percentile 0.017-26 mL;
- clot extent along z: median 17 mm, quartiles 8-38 mm;
- clot cross-section area on a slice: median 67 mm², quartiles 31-155 mm²;
- a clot's mean axial cross-section (volume / z extent) grows with its volume as
  63.4 mm² × V^0.49 (V in mL), log residual SD 0.45.

The artery a clot sits in is chosen to give it that cross-section, so the 2-D clot pieces a
slice shows follow FUMPE's sizes rather than the branching of the phantom's tree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pe_models.synth.anatomy import Anatomy, Tissue
from pe_models.synth.grid import Grid, Segment, ellipsoid, tube_field

FUMPE_CLOTS_PER_PATIENT = (1, 1, 2, 2, 2, 3, 3, 4, 6)
"""Counts drawn uniformly from this list reproduce FUMPE's median 2, quartiles 1-3, tail 6."""

FUMPE_CLOT_VOLUME_ML_MEDIAN = 1.07
FUMPE_CLOT_VOLUME_LOG_SD = 1.9
"""Log-normal clot volume: ln-quartiles of FUMPE are ±1.3 around the median (σ ≈ 1.9)."""

FUMPE_CROSS_SECTION_MM2_PER_ML = 63.4
FUMPE_CROSS_SECTION_VOLUME_POWER = 0.49
FUMPE_CROSS_SECTION_LOG_SD = 0.45
"""Mean axial clot cross-section (mm²) = 63.4 × V(mL)^0.49 × e^N(0, 0.45), fitted on FUMPE's
94 3-D clots of at least 1 mm³."""

CROSS_SECTION_LOG_TOLERANCE = 0.2
"""Arteries whose clot cross-section is within e^0.2 (in log) of the best fit are drawn from."""

CLOT_SHAPES = ("polo_mint", "eccentric", "occlusive")

MAX_CLOT_LENGTH_MM = 150.0
"""Longest clot followed down the tree (FUMPE's 95th percentile z extent is 88 mm)."""


@dataclass(frozen=True)
class Clot:
    """One embolus: where it sits, its shape and its attenuation."""

    segment_index: int
    level: int
    side: str
    shape: str
    hu: float
    volume_ml: float


@dataclass(frozen=True)
class _ClotPath:
    """Where a clot runs: consecutive arteries downstream, and its shape parameters."""

    pieces: list[tuple[Segment, float, float, float]]  # segment, t0, t1, arc length at t0
    length: float
    shape: str
    lumen_fraction: float
    wall: np.ndarray


def _downstream_path(
    arteries: tuple[Segment, ...],
    children: dict[int, list[int]],
    index: int,
    t0: float,
    volume_mm3: float,
    lumen_fraction: float,
    min_radius: float,
) -> list[tuple[Segment, float, float, float]]:
    """Follow the larger daughter from ``arteries[index]`` until the clot volume is used up.

    Returns (segment, t0, t1, arc length at t0) pieces; the blunt taper keeps ~85 % of a
    cylinder (more with ``along**0.1``; the estimate errs towards longer clots), which the
    volume per mm accounts for.
    """
    pieces = []
    covered = 0.0
    remaining = volume_mm3
    while remaining > 0 and covered < MAX_CLOT_LENGTH_MM:
        segment = arteries[index]
        radius = (segment.radius0 + segment.radius1) / 2 * lumen_fraction
        per_mm = np.pi * radius**2 * 0.85
        available = (1.0 - t0) * segment.length
        used = min(available, remaining / per_mm, MAX_CLOT_LENGTH_MM - covered)
        t1 = t0 + used / segment.length
        pieces.append((segment, t0, t1, covered))
        covered += used
        remaining -= used * per_mm
        following = [i for i in children.get(index, []) if arteries[i].radius0 >= min_radius]
        if used < available or not following:
            break
        index, t0 = max(following, key=lambda i: arteries[i].radius0), 0.0
    return pieces


def _paint_clot(grid: Grid, mask: np.ndarray, path: _ClotPath) -> int:
    """Paint a cigar-shaped clot along its path into ``mask``; returns voxels painted."""
    painted = 0
    for segment, t0, t1, arc0 in path.pieces:
        field = tube_field(grid, segment)
        if field is None:
            continue
        arc = arc0 + (field.t - t0) * segment.length
        within = (field.t >= t0) & (field.t <= t1)
        along = np.clip(1 - ((arc - path.length / 2) / (path.length / 2)) ** 2, 0, 1)
        taper = along**0.1  # blunt ends: a clot fills its lumen share to near its tips
        if path.shape == "eccentric":  # a mural clot against one side of the wall
            direction = (segment.end - segment.start) / segment.length
            wall = path.wall - (path.wall @ direction) * direction
            wall = (wall / max(float(np.linalg.norm(wall)), 1e-6)).astype(np.float32)
            shifted = field.offset - wall[:, None, None, None] * field.radius * 0.55
            inside = np.sqrt((shifted**2).sum(axis=0)) <= field.radius * 0.65 * taper
        else:  # occlusive fills the lumen; polo mint leaves a rim of contrast around it
            inside = field.distance <= field.radius * path.lumen_fraction * taper
        inside &= field.inside & within & (along > 0)
        mask[field.slices] |= inside
        painted += int(inside.sum())
    return painted


def _children(arteries: tuple[Segment, ...]) -> dict[int, list[int]]:
    starts: dict[tuple[float, ...], list[int]] = {}
    for i, segment in enumerate(arteries):
        starts.setdefault(tuple(np.round(segment.start, 3)), []).append(i)
    return {i: starts.get(tuple(np.round(s.end, 3)), []) for i, s in enumerate(arteries)}


def _lumen_fraction(rng: np.random.Generator, shape: str) -> float:
    """Share of the artery radius a clot of ``shape`` fills (eccentric: the disc's radius)."""
    return {"occlusive": 1.0, "polo_mint": float(rng.uniform(0.5, 0.7)), "eccentric": 0.65}[shape]


def _artery_for_cross_section(
    rng: np.random.Generator,
    arteries: tuple[Segment, ...],
    cross_section_mm2: float,
    lumen_fraction: float,
    min_radius_mm: float,
) -> int | None:
    """Index of an artery whose clot would have about ``cross_section_mm2``, or None.

    Among arteries wide enough to show a clot, those whose clot cross-section
    π (mean radius × ``lumen_fraction``)² lies within :data:`CROSS_SECTION_LOG_TOLERANCE` (in
    log) of the closest one are drawn from uniformly, so equally fitting arteries on both sides
    and at several branches share the clots.
    """
    candidates = [i for i, s in enumerate(arteries) if s.radius1 >= min_radius_mm and s.length > 8]
    if not candidates:
        return None
    radii = np.array([(arteries[i].radius0 + arteries[i].radius1) / 2 for i in candidates])
    gaps = np.abs(np.log(np.pi * (radii * lumen_fraction) ** 2 / cross_section_mm2))
    close = np.flatnonzero(gaps <= gaps.min() + CROSS_SECTION_LOG_TOLERANCE)
    return candidates[int(rng.choice(close))]


def place_clots(
    rng: np.random.Generator, grid: Grid, arteries: tuple[Segment, ...], min_radius_mm: float
) -> tuple[np.ndarray, list[Clot]]:
    """Put 1-6 emboli into arteries large enough to show them.

    A clot's volume is drawn from FUMPE's distribution and its mean cross-section from FUMPE's
    law for that volume; it starts in an artery that gives it that cross-section and runs
    downstream through the larger daughter branches until the volume fits, tapering at both
    ends.

    Returns
    -------
    tuple
        bool (z, y, x) PE mask (a subset of the artery lumen by construction) and the clots.
    """
    mask = np.zeros(grid.shape, dtype=bool)
    clots: list[Clot] = []
    children = _children(arteries)
    n_clots = int(rng.choice(FUMPE_CLOTS_PER_PATIENT))
    clot_hu = float(rng.uniform(20, 70))  # one clot age, one attenuation, per study
    voxel_ml = float(np.prod(grid.spacing)) / 1000
    for _ in range(n_clots * 4):  # some clots fall outside the grid; try again
        if len(clots) == n_clots:
            break
        shape = str(rng.choice(CLOT_SHAPES))
        lumen_fraction = _lumen_fraction(rng, shape)
        volume_ml = float(
            np.exp(rng.normal(np.log(FUMPE_CLOT_VOLUME_ML_MEDIAN), FUMPE_CLOT_VOLUME_LOG_SD))
        )
        cross_section_mm2 = (
            FUMPE_CROSS_SECTION_MM2_PER_ML
            * volume_ml ** (FUMPE_CROSS_SECTION_VOLUME_POWER)
            * float(np.exp(rng.normal(0.0, FUMPE_CROSS_SECTION_LOG_SD)))
        )
        index = _artery_for_cross_section(
            rng, arteries, cross_section_mm2, lumen_fraction, min_radius_mm
        )
        if index is None:
            break
        segment = arteries[index]
        t0 = float(rng.uniform(0, 0.5))
        pieces = _downstream_path(
            arteries, children, index, t0, volume_ml * 1000, lumen_fraction, min_radius_mm
        )
        covered = sum((t1 - ta) * s.length for s, ta, t1, _ in pieces)
        path = _ClotPath(pieces, covered, shape, lumen_fraction, rng.normal(size=3))
        before = int(mask.sum())
        if _paint_clot(grid, mask, path) == 0:
            continue
        level = min(segment.level, 3)
        clots.append(
            Clot(index, level, segment.side, shape, clot_hu, (int(mask.sum()) - before) * voxel_ml)
        )
    return mask, clots


@dataclass(frozen=True)
class Lesion:
    """One focus of other lung disease."""

    kind: str
    hu: float
    mask_index: int


OTHER_DISEASES = ("consolidation", "ground_glass", "nodule", "effusion", "emphysema")


class _LungSampler:
    """Random points inside the lungs (from a subsampled lung mask, computed once)."""

    def __init__(self, lungs: np.ndarray, grid: Grid, stride: int = 4) -> None:
        z, y, x = np.nonzero(lungs[:, ::stride, ::stride])
        self._points = np.stack(
            [grid.axis_mm(2)[x * stride], grid.axis_mm(1)[y * stride], grid.axis_mm(0)[z]], axis=1
        )

    def __call__(self, rng: np.random.Generator, *, posterior: bool = False) -> np.ndarray:
        points = self._points
        if posterior:  # dependent lung, where consolidation collects
            points = points[points[:, 1] > np.percentile(points[:, 1], 60)]
        return points[int(rng.integers(len(points)))]


def place_other_disease(
    rng: np.random.Generator,
    grid: Grid,
    anatomy: Anatomy,
    labels: np.ndarray,
    lungs: np.ndarray,
    kinds: list[str],
) -> tuple[np.ndarray, list[Lesion], list[np.ndarray]]:
    """Paint lesions of the given kinds into the lungs.

    Returns
    -------
    tuple
        bool (z, y, x) other-disease mask, the lesions, and one bool mask per lesion (in the
        same order) so the renderer can give each its attenuation.
    """
    union = np.zeros(grid.shape, dtype=bool)
    lesions: list[Lesion] = []
    masks: list[np.ndarray] = []
    if not kinds:
        return union, lesions, masks
    lung_tissue = labels == Tissue.LUNG
    random_lung_point = _LungSampler(lungs, grid)
    for kind in kinds:
        blob = np.zeros(grid.shape, dtype=bool)
        if kind == "effusion":
            hu = rng.uniform(5, 20)
            depth = rng.uniform(25, 60)
            y = grid.axis_mm(1)[None, :, None]
            z = grid.axis_mm(0)[:, None, None]
            _cax, cay = anatomy.cavity_semi_axes
            floor = anatomy.cavity_centre_y + cay - depth
            side_x = grid.axis_mm(2)[None, None, :] * (1 if rng.random() < 0.5 else -1) > 0
            low = z < max(anatomy.z_dome_left, anatomy.z_dome_right) + rng.uniform(40, 90)
            blob = lungs & (y > floor) & low & side_x
        elif kind == "emphysema":
            hu = rng.uniform(-1000, -970)
            for _ in range(int(rng.integers(15, 40))):
                centre = random_lung_point(rng)
                found = ellipsoid(grid, centre, np.full(3, rng.uniform(2.0, 7.0)))
                if found is not None:
                    blob[found[0]] |= found[1]
        else:
            centre = random_lung_point(rng, posterior=kind == "consolidation")
            if kind == "nodule":
                hu, parts, size = rng.uniform(25, 60), 2, rng.uniform(4, 18)
            elif kind == "consolidation":
                hu, parts, size = rng.uniform(20, 50), 5, rng.uniform(12, 30)
            else:
                hu, parts, size = rng.uniform(-500, -250), 4, rng.uniform(12, 28)
            for _ in range(parts):
                offset = rng.normal(scale=size * 0.6, size=3)
                found = ellipsoid(grid, centre + offset, size * rng.uniform(0.6, 1.1, size=3))
                if found is not None:
                    blob[found[0]] |= found[1]
        blob &= lung_tissue
        if not blob.any():
            continue
        union |= blob
        lesions.append(Lesion(str(kind), float(hu), len(masks)))
        masks.append(blob)
    return union, lesions, masks
