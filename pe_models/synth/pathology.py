"""Pulmonary emboli inside the arterial tree, and other lung disease.

Clot counts, volumes and lengths are drawn to match the 35 real FUMPE PE masks (Masoudi et al.,
Scientific Data 2018, CC BY 4.0) in ``../shared/data/fumpe``, measured with
``benchmarks/phantom_realism.py --fumpe-stats`` (3-D connected clots of at least 1 mm³):

- clots per patient: median 2, quartiles 1-3, 95th percentile 6;
- clot volume: median 1.07 mL, quartiles 0.30-4.97 mL, 5th-95th percentile 0.017-26 mL;
- clot extent along z: median 17 mm, quartiles 8-38 mm;
- clot cross-section area on a slice: median 67 mm², quartiles 31-155 mm².
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

CLOT_LEVEL_WEIGHTS = {0: 0.15, 1: 0.3, 2: 0.35, 3: 0.2}
"""Central (trunk / main), lobar, segmental and subsegmental clots."""

CLOT_SHAPES = ("polo_mint", "eccentric", "occlusive")


@dataclass(frozen=True)
class Clot:
    """One embolus: where it sits, its shape and its attenuation."""

    segment_index: int
    level: int
    side: str
    shape: str
    hu: float
    volume_ml: float


def _clot_field(
    grid: Grid, segment: Segment, shape: str, t0: float, t1: float, rng: np.random.Generator
):
    field = tube_field(grid, segment)
    if field is None:
        return None
    span = max(t1 - t0, 1e-3)
    along = np.clip(1 - ((field.t - (t0 + t1) / 2) / (span / 2)) ** 2, 0, 1)  # cigar ends
    taper = np.sqrt(along)
    if shape == "occlusive":
        inside = field.distance <= field.radius * np.maximum(taper, 0.0) + 1e-6
        inside &= along > 0
    elif shape == "polo_mint":
        inside = field.distance <= field.radius * rng.uniform(0.5, 0.7) * taper
    else:  # eccentric: a mural clot against one side of the wall
        direction = segment.end - segment.start
        random = rng.normal(size=3)
        wall = random - (random @ direction) / (direction @ direction) * direction
        wall = (wall / np.linalg.norm(wall)).astype(np.float32)
        centre = field.radius * 0.55
        shifted = field.offset - wall[:, None, None, None] * centre
        inside = np.sqrt((shifted**2).sum(axis=0)) <= field.radius * 0.65 * taper
    return field.slices, inside & field.inside & (along > 0)


def place_clots(
    rng: np.random.Generator, grid: Grid, arteries: tuple[Segment, ...], min_radius_mm: float
) -> tuple[np.ndarray, list[Clot]]:
    """Put 1-6 emboli into arteries large enough to show them.

    Returns
    -------
    tuple
        bool (z, y, x) PE mask (a subset of the artery lumen by construction) and the clots.
    """
    mask = np.zeros(grid.shape, dtype=bool)
    clots: list[Clot] = []
    n_clots = int(rng.choice(FUMPE_CLOTS_PER_PATIENT))
    clot_hu = float(rng.uniform(20, 70))  # one clot age, one attenuation, per study
    levels = np.array(list(CLOT_LEVEL_WEIGHTS))
    weights = np.array(list(CLOT_LEVEL_WEIGHTS.values()))
    for _ in range(n_clots * 4):  # some draws find no suitable artery; try again
        if len(clots) == n_clots:
            break
        level = int(rng.choice(levels, p=weights / weights.sum()))
        candidates = [
            i
            for i, s in enumerate(arteries)
            if min(s.level, 3) == level and s.radius1 >= min_radius_mm and s.length > 8
        ]
        if not candidates:
            continue
        index = int(rng.choice(candidates))
        segment = arteries[index]
        shape = "occlusive" if level >= 2 and rng.random() < 0.6 else str(rng.choice(CLOT_SHAPES))
        volume_ml = float(
            np.exp(rng.normal(np.log(FUMPE_CLOT_VOLUME_ML_MEDIAN), FUMPE_CLOT_VOLUME_LOG_SD))
        )
        filled_fraction = {"occlusive": 0.67, "polo_mint": 0.25, "eccentric": 0.3}[shape]
        area = np.pi * segment.radius0**2 * filled_fraction
        length = np.clip(volume_ml * 1000 / area, 6.0, segment.length)
        t0 = rng.uniform(0, 1 - length / segment.length)
        painted = _clot_field(grid, segment, shape, t0, t0 + length / segment.length, rng)
        if painted is None or not painted[1].any():
            continue
        slices, inside = painted
        mask[slices] |= inside
        voxel_ml = float(np.prod(grid.spacing)) / 1000
        clots.append(
            Clot(index, level, segment.side, shape, clot_hu, float(inside.sum() * voxel_ml))
        )
    return mask, clots


@dataclass(frozen=True)
class Lesion:
    """One focus of other lung disease."""

    kind: str
    hu: float
    mask_index: int


OTHER_DISEASES = ("consolidation", "ground_glass", "nodule", "effusion", "emphysema")


def _random_lung_point(
    rng: np.random.Generator, lungs: np.ndarray, grid: Grid, *, posterior: bool = False
) -> np.ndarray:
    z, y, x = np.nonzero(lungs[:, ::4, ::4])
    if posterior:
        keep = y > np.percentile(y, 60)
        z, y, x = z[keep], y[keep], x[keep]
    pick = int(rng.integers(len(z)))
    return np.array(
        [grid.axis_mm(2)[x[pick] * 4], grid.axis_mm(1)[y[pick] * 4], grid.axis_mm(0)[z[pick]]]
    )


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
    lung_tissue = labels == Tissue.LUNG
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
                centre = _random_lung_point(rng, lungs, grid)
                found = ellipsoid(grid, centre, np.full(3, rng.uniform(2.0, 7.0)))
                if found is not None:
                    blob[found[0]] |= found[1]
        else:
            centre = _random_lung_point(rng, lungs, grid, posterior=kind == "consolidation")
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
        lesions.append(Lesion(kind, float(hu), len(masks)))
        masks.append(blob)
    return union, lesions, masks
