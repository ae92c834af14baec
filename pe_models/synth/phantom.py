"""Synthetic CTPA studies with exact labels: the one entry point :func:`generate_phantom`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from pe_models.synth.anatomy import Anatomy, paint_trunk, sample_anatomy
from pe_models.synth.grid import Grid
from pe_models.synth.pathology import OTHER_DISEASES, Clot, Lesion, place_clots, place_other_disease
from pe_models.synth.render import render
from pe_models.synth.structures import (
    build_vessels,
    paint_bones,
    paint_heart,
    paint_table,
    paint_vessels,
)
from pe_models.volume import Volume, VolumeMeta

PHANTOM_VERSION = 2
"""Bump when the generator changes, so cached phantoms and prepared studies are made again
(2: clots placed by FUMPE's cross-section law, blunter ends)."""

KINDS = ("pe", "other", "normal")
SIZES = {
    # matrix, field of view (mm), slices, slice step choices (mm)
    "test": (128, 360.0, 48, (6.0,)),
    "full": (512, 360.0, None, (1.0, 1.25)),
}
SLICE_LABELS = ("normal", "other_disease", "pe")


@dataclass(frozen=True)
class StudyLabels:
    """Study-level truth, named like the RSNA-STR PE exam labels where they overlap."""

    pe_present: bool
    central_pe: bool
    leftsided_pe: bool
    rightsided_pe: bool
    other_disease_present: bool
    contrast: bool
    clots: tuple[Clot, ...] = ()
    lesions: tuple[Lesion, ...] = ()


@dataclass(frozen=True, eq=False)
class Phantom:
    """A synthetic study and its exact labels.

    Attributes
    ----------
    volume
        The CT (HU, geometry, meta).
    pe_mask, other_mask, artery_mask, lung_mask
        uint8 (z, y, x) 0/1 masks. ``pe_mask`` lies inside ``artery_mask``.
    slice_labels
        Per slice: ``"pe"`` if any clot is on it, else ``"other_disease"`` if a lesion is, else
        ``"normal"``.
    boxes
        Per slice, one [x0, y0, x1, y1] box per connected clot cross-section (pixels; x is the
        column; x1 and y1 exclusive).
    study
        Study-level labels.
    tissue
        uint8 (z, y, x) :class:`~pe_models.synth.anatomy.Tissue` labels before rendering.
    fov_radius_mm
        Reconstruction circle: outside it the DICOM writer stores scanner padding.
    seed, kind, size
        How it was made.
    """

    volume: Volume
    pe_mask: np.ndarray
    other_mask: np.ndarray
    artery_mask: np.ndarray
    lung_mask: np.ndarray
    slice_labels: tuple[str, ...]
    boxes: tuple[tuple[tuple[int, int, int, int], ...], ...]
    study: StudyLabels
    tissue: np.ndarray
    fov_radius_mm: float
    seed: int
    kind: str
    size: str
    anatomy: Anatomy = field(repr=False)


def _grid(rng: np.random.Generator, anatomy: Anatomy, size: str) -> Grid:
    matrix, fov, n_slices, steps = SIZES[size]
    step = float(rng.choice(steps))
    top = anatomy.z_apex + rng.uniform(10, 25)
    bottom = min(anatomy.z_dome_right, anatomy.z_dome_left) - rng.uniform(40, 70)
    if n_slices is None:
        n_slices = int(np.clip(round((top - bottom) / step), 200, 300))
    else:
        step = (top - bottom) / n_slices
    pixel = fov / matrix
    # Rounded to µm so that the DICOM headers state the geometry exactly.
    x0, y0 = -fov / 2 + pixel / 2, -fov / 2 + pixel / 2 + rng.uniform(-10, 10)
    origin = (round(x0, 3), round(y0, 3), round(bottom, 3))
    return Grid((n_slices, matrix, matrix), (round(step, 3), pixel, pixel), origin)


def slice_boxes(pe_mask: np.ndarray) -> tuple[tuple[tuple[int, int, int, int], ...], ...]:
    """One [x0, y0, x1, y1] box per 8-connected clot cross-section on each slice."""
    boxes: list[tuple[tuple[int, int, int, int], ...]] = []
    for plane in pe_mask:
        if not plane.any():
            boxes.append(())
            continue
        labels, _ = ndimage.label(plane, structure=np.ones((3, 3)))
        boxes.append(
            tuple(
                (found[1].start, found[0].start, found[1].stop, found[0].stop)
                for found in ndimage.find_objects(labels)
                if found is not None
            )
        )
    return tuple(boxes)


def generate_phantom(
    seed: int, kind: str = "pe", size: str = "test", *, contrast: bool = True
) -> Phantom:
    """Make one synthetic CTPA study; the same arguments always give the same study.

    Parameters
    ----------
    seed
        Any non-negative integer.
    kind
        ``"pe"`` (1-6 emboli, sometimes with other disease), ``"other"`` (1-3 lesions of other
        lung disease) or ``"normal"``.
    size
        ``"test"`` (128², 48 slices, for unit tests) or ``"full"`` (512² at 0.70 mm, 200-300
        slices of 1 or 1.25 mm).
    contrast
        False for a non-contrast study (blood ≈ 40 HU).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown phantom kind {kind!r}; valid: {', '.join(KINDS)}")
    if size not in SIZES:
        raise ValueError(f"unknown phantom size {size!r}; valid: {', '.join(SIZES)}")
    rng = np.random.default_rng([seed, KINDS.index(kind), list(SIZES).index(size), int(contrast)])
    anatomy = sample_anatomy(rng, contrast=contrast)
    grid = _grid(rng, anatomy, size)
    pixel = grid.spacing[1]

    labels = np.zeros(grid.shape, dtype=np.uint8)
    lungs = paint_trunk(labels, grid, anatomy)
    paint_heart(labels, grid, anatomy)
    paint_bones(labels, grid, anatomy, rng)
    vessels = build_vessels(rng, anatomy, min_radius=max(0.4, 0.6 * pixel))
    arteries = paint_vessels(labels, grid, vessels)
    paint_table(labels, grid, anatomy)

    painted: list[tuple[np.ndarray, float, float]] = []
    other_kinds: list[str] = []
    if kind == "other" or (kind == "pe" and rng.random() < 0.25):
        other_kinds = list(rng.choice(OTHER_DISEASES, size=int(rng.integers(1, 4))))
    other, lesions, lesion_masks = place_other_disease(
        rng, grid, anatomy, labels, lungs, other_kinds
    )
    for lesion, mask in zip(lesions, lesion_masks, strict=True):
        painted.append((mask, lesion.hu, 0.6 if lesion.kind == "ground_glass" else 1.0))

    pe = np.zeros(grid.shape, dtype=bool)
    clots: list[Clot] = []
    if kind == "pe":
        pe, clots = place_clots(rng, grid, vessels.arteries, min_radius_mm=max(1.2, 1.5 * pixel))
        if clots:
            painted.append((pe, clots[0].hu, 1.0))

    hu = render(labels, grid, anatomy, rng, painted=painted, fov_radius_mm=SIZES[size][1] / 2)
    on_slice_pe = [bool(plane.any()) for plane in pe]
    on_slice_other = [bool(plane.any()) for plane in other]
    slice_labels = tuple(
        "pe" if p else "other_disease" if o else "normal"
        for p, o in zip(on_slice_pe, on_slice_other, strict=True)
    )
    study = StudyLabels(
        pe_present=bool(clots),
        central_pe=any(c.level == 0 for c in clots),
        leftsided_pe=any(c.side == "left" for c in clots),
        rightsided_pe=any(c.side == "right" for c in clots),
        other_disease_present=bool(lesions),
        contrast=contrast,
        clots=tuple(clots),
        lesions=tuple(lesions),
    )
    volume = Volume(
        hu=hu,
        spacing=grid.spacing,
        origin=grid.origin,
        direction=np.eye(3),
        meta=VolumeMeta(
            description=f"SYNTHETIC CTPA PHANTOM seed {seed} ({kind})",
            contrast_agent="SYNTHETIC IODINE" if contrast else None,
            contrast_hint="contrast" if contrast else "non-contrast",
            source=f"pe_models.synth seed={seed} kind={kind} size={size}",
        ),
    )
    return Phantom(
        volume=volume,
        pe_mask=pe.astype(np.uint8),
        other_mask=other.astype(np.uint8),
        artery_mask=arteries.astype(np.uint8),
        lung_mask=lungs.astype(np.uint8),
        slice_labels=slice_labels,
        boxes=slice_boxes(pe),
        study=study,
        tissue=labels,
        fov_radius_mm=SIZES[size][1] / 2,
        seed=seed,
        kind=kind,
        size=size,
        anatomy=anatomy,
    )
