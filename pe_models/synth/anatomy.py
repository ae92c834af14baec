"""Per-patient anatomy of the phantom: parameters, tissue labels and the shapes of the chest."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from pe_models.synth.grid import Grid

SKIN_MM = 2.0
"""Thickness of the skin over the subcutaneous fat."""

CHEST_SHAPE_EXPONENT = 2.4
"""Superellipse exponent of the body and chest cavity outlines: a chest is boxier than an
ellipse (2)."""


class Tissue(IntEnum):
    """Tissue label of a phantom voxel."""

    AIR = 0
    FAT = 1
    MUSCLE = 2
    CORTICAL_BONE = 3
    MARROW = 4
    LUNG = 5
    AIRWAY = 6
    AIRWAY_WALL = 7
    PA_BLOOD = 8  # right heart and pulmonary arteries: the CTPA bolus
    LEFT_BLOOD = 9  # left heart, aorta, pulmonary veins
    SVC_BLOOD = 10  # dense inflowing contrast
    MYOCARDIUM = 11
    LIVER = 12
    SPLEEN = 13
    CARTILAGE = 14
    TABLE = 15
    CSF = 16
    DISC = 17
    SKIN = 18


@dataclass(frozen=True)
class Anatomy:
    """The shape and contrast parameters of one synthetic patient (mm and HU).

    z = 0 is the carina; x is the patient's left, y posterior.
    """

    body_semi_axes: tuple[float, float]
    fat_mm: float
    muscle_mm: float
    cavity_centre_y: float
    z_apex: float
    z_dome_right: float
    z_dome_left: float
    heart_centre: tuple[float, float, float]
    heart_semi_axes: tuple[float, float, float]
    spine_y: float
    contrast: bool
    hu: dict[int, float]
    lung_hu: float
    noise_sd: float

    @property
    def cavity_semi_axes(self) -> tuple[float, float]:
        """Inner chest (inside the ribs) semi-axes in x and y."""
        wall = self.fat_mm + self.muscle_mm + 6.0
        return self.body_semi_axes[0] - wall, self.body_semi_axes[1] - wall - 6.0

    def cavity_scale(self, z: float) -> float:
        """Lateral size of the chest cavity at height ``z`` relative to its widest (the base)."""
        span = max(self.z_apex - max(self.z_dome_right, self.z_dome_left), 1.0)
        return 0.8 + 0.2 * float(np.sin(np.pi / 2 * np.clip((self.z_apex - z) / span, 0.0, 1.0)))

    def lung_mask_2d(
        self, x: np.ndarray, y: np.ndarray, z: float, diaphragm: np.ndarray | None = None
    ) -> np.ndarray:
        """Where the lungs are on the axial plane at height ``z`` (x, y broadcast, mm).

        ``diaphragm`` may pass ``diaphragm_z(x, y)`` when it was computed already.
        """
        taper = np.sqrt(np.clip((self.z_apex - z) / 45.0, 0.0, 1.0))
        if taper <= 0:
            return np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
        cax, cay = self.cavity_semi_axes
        cax *= self.cavity_scale(z)
        yc = self.cavity_centre_y
        in_cavity = (
            np.abs(x / (cax * (0.3 + 0.7 * taper))) ** CHEST_SHAPE_EXPONENT
            + np.abs((y - yc) / (cay * (0.45 + 0.55 * taper))) ** CHEST_SHAPE_EXPONENT
            < 1
        )
        # Mediastinum: a smooth band, widest anteriorly, around the midline.
        half_width = 26.0 + 10.0 * np.clip((yc - y) / cay, 0.0, 1.0)
        mediastinum = ((x - 6.0) / half_width) ** 2 + ((y - yc + 0.1 * cay) / (1.05 * cay)) ** 4 < 1
        spine = x**2 + (y - self.spine_y - 4.0) ** 2 < 31.0**2  # lungs wrap around the spine
        hx, hy, hz = self.heart_centre
        ax, ay, az = self.heart_semi_axes
        heart = ((x - hx) / (ax + 8)) ** 2 + ((y - hy) / (ay + 8)) ** 2 + (
            (z - hz) / (az + 8)
        ) ** 2 < 1
        if diaphragm is None:
            diaphragm = self.diaphragm_z(x, y)
        return in_cavity & ~mediastinum & ~spine & ~heart & (z > diaphragm)

    def diaphragm_z(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height of the diaphragm (mm) under each (x, y): two domes, deep recesses at the rim."""
        cax, cay = self.cavity_semi_axes
        dome = np.where(x < 0, self.z_dome_right, self.z_dome_left)
        side_x = np.where(x < 0, -0.45 * cax, 0.45 * cax)
        return dome - 55.0 * (((x - side_x) / cax) ** 2 + ((y - self.cavity_centre_y) / cay) ** 2)

    def lung_lookup(self, cell_mm: float = 2.0) -> LungLookup:
        """A fast point-in-lung test on a ``cell_mm`` lattice (for growing vessel trees)."""
        return LungLookup(self, cell_mm)


class LungLookup:
    """Point-in-lung test by lookup in a precomputed lattice; ~100x faster than the shapes."""

    def __init__(self, anatomy: Anatomy, cell_mm: float) -> None:
        low = np.array(
            [-anatomy.body_semi_axes[0], -anatomy.body_semi_axes[1], anatomy.z_dome_left - 80.0]
        )
        high = np.array(
            [anatomy.body_semi_axes[0], anatomy.body_semi_axes[1], anatomy.z_apex + 5.0]
        )
        self._low, self._cell = low, cell_mm
        axes = [np.arange(lo, hi, cell_mm) + cell_mm / 2 for lo, hi in zip(low, high, strict=True)]
        x, y = axes[0][None, :], axes[1][:, None]
        self._occupied = np.stack([anatomy.lung_mask_2d(x, y, float(z)) for z in axes[2]])

    def __call__(self, point: np.ndarray) -> bool:
        """Whether an (x, y, z) point in mm lies in a lung."""
        ix, iy, iz = ((np.asarray(point) - self._low) // self._cell).astype(int)
        nz, ny, nx = self._occupied.shape
        return bool(0 <= ix < nx and 0 <= iy < ny and 0 <= iz < nz and self._occupied[iz, iy, ix])


def sample_anatomy(rng: np.random.Generator, *, contrast: bool = True) -> Anatomy:
    """Draw one patient.

    Parameters
    ----------
    rng
        Source of all variation; the same state gives the same patient.
    contrast
        False for a non-contrast study (blood ≈ 40 HU) to exercise the contrast check.
    """
    size = rng.uniform(0.88, 1.12)
    pa_hu = rng.uniform(250, 450) if contrast else 40.0
    left_hu = max(120.0, pa_hu * rng.uniform(0.55, 0.8)) if contrast else 40.0
    hu = {
        Tissue.AIR: -1000.0,
        Tissue.FAT: rng.uniform(-110, -85),
        Tissue.MUSCLE: rng.uniform(40, 60),
        Tissue.CORTICAL_BONE: rng.uniform(750, 1000),
        Tissue.MARROW: rng.uniform(180, 300),
        Tissue.LUNG: 0.0,  # set from lung_hu with texture at render time
        Tissue.AIRWAY: -1000.0,
        Tissue.AIRWAY_WALL: rng.uniform(20, 60),
        Tissue.PA_BLOOD: pa_hu,
        Tissue.LEFT_BLOOD: left_hu,
        Tissue.SVC_BLOOD: rng.uniform(500, 1200) if contrast else 40.0,
        Tissue.MYOCARDIUM: rng.uniform(90, 120) if contrast else 40.0,
        Tissue.LIVER: rng.uniform(55, 75),
        Tissue.SPLEEN: rng.uniform(45, 65),
        Tissue.CARTILAGE: rng.uniform(120, 200),
        Tissue.TABLE: rng.uniform(150, 300),
        Tissue.CSF: rng.uniform(5, 15),
        Tissue.DISC: rng.uniform(70, 100),
        Tissue.SKIN: rng.uniform(30, 60),
    }
    body_x, body_y = rng.uniform(150, 175) * size, rng.uniform(100, 120) * size
    return Anatomy(
        body_semi_axes=(body_x, body_y),
        fat_mm=rng.uniform(6, 22) * size,
        muscle_mm=rng.uniform(4, 8),
        cavity_centre_y=rng.uniform(0, 10),
        z_apex=rng.uniform(115, 140) * size,
        z_dome_right=rng.uniform(-125, -100) * size,
        z_dome_left=rng.uniform(-140, -115) * size,
        heart_centre=(rng.uniform(15, 30), rng.uniform(-35, -20), rng.uniform(-85, -65) * size),
        heart_semi_axes=tuple(rng.uniform(0.9, 1.1) * np.array([56.0, 44.0, 48.0]) * size),
        spine_y=0.92 * body_y - rng.uniform(45, 55) * size,  # canal ~2 cm under the back
        contrast=contrast,
        hu={int(k): float(v) for k, v in hu.items()},
        lung_hu=rng.uniform(-880, -830),
        noise_sd=rng.uniform(10, 25),
    )


def body_masks_2d(
    anatomy: Anatomy, x: np.ndarray, y: np.ndarray, z: float
) -> tuple[np.ndarray, ...]:
    """Body, skin, muscle (inside the subcutaneous fat) and chest cavity on a plane (bool)."""
    ax, ay = anatomy.body_semi_axes
    ax *= 0.9 + 0.1 * anatomy.cavity_scale(z) / 1.0
    back = np.where(y > 0, 0.92, 1.0)  # the back is flatter than the front
    p = CHEST_SHAPE_EXPONENT
    outline = np.abs(x / ax) ** p + np.abs(y / (ay * back)) ** p
    body = outline < 1
    skin = body & (outline > (1 - SKIN_MM / ay) ** p)
    inner = anatomy.fat_mm
    muscle = np.abs(x / (ax - inner)) ** p + np.abs(y / (ay * back - inner)) ** p < 1
    cax, cay = anatomy.cavity_semi_axes
    cax *= anatomy.cavity_scale(z)
    cavity = np.abs(x / cax) ** p + np.abs((y - anatomy.cavity_centre_y) / cay) ** p < 1
    paraspinal = ((np.abs(x) - 38.0) / 32.0) ** 2 + ((y - anatomy.spine_y - 30.0) / 24.0) ** 2 < 1
    pectoral_y = -ay + anatomy.fat_mm + 8.0
    pectoral = ((np.abs(x) - 0.38 * ax) / (0.33 * ax)) ** 2 + ((y - pectoral_y) / 9.0) ** 2 < 1
    return body, skin, muscle | ((paraspinal | pectoral) & body), cavity


def paint_trunk(labels: np.ndarray, grid: Grid, anatomy: Anatomy) -> np.ndarray:
    """Body wall, mediastinal fat, abdomen and lungs, slice by slice.

    Returns
    -------
    np.ndarray
        bool (z, y, x) lung mask (before vessels and airways are carved in).
    """
    x = grid.axis_mm(2)[None, :]
    y = grid.axis_mm(1)[:, None]
    lungs = np.zeros(grid.shape, dtype=bool)
    cax, _ = anatomy.cavity_semi_axes
    diaphragm = anatomy.diaphragm_z(x, y)
    liver_side = x < 0.15 * cax
    for k, z in enumerate(grid.axis_mm(0)):
        body, skin, muscle, cavity = body_masks_2d(anatomy, x, y, float(z))
        plane = labels[k]
        plane[body] = Tissue.FAT
        plane[skin] = Tissue.SKIN
        plane[muscle] = Tissue.MUSCLE
        plane[cavity] = Tissue.FAT
        abdomen = cavity & (z <= diaphragm)  # liver on the right, spleen on the left
        plane[abdomen & liver_side] = Tissue.LIVER
        plane[abdomen & ~liver_side] = Tissue.SPLEEN
        lung = anatomy.lung_mask_2d(x, y, float(z), diaphragm)
        plane[lung] = Tissue.LUNG
        lungs[k] = lung
    return lungs
