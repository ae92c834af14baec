"""The one in-memory study type shared by every model, writer and the viewer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

AIR_HU = -1024
"""HU written where the scanner padded outside its field of view."""


@dataclass(frozen=True)
class VolumeMeta:
    """What we know about where a volume came from.

    Attributes
    ----------
    series_uid, study_uid
        DICOM SeriesInstanceUID / StudyInstanceUID, or None for NIfTI/NRRD/MHA files.
    description
        SeriesDescription (DICOM) or the file name.
    modality
        DICOM Modality, ``"CT"`` for image files (assumed: they carry no modality).
    contrast_agent
        ContrastBolusAgent as written by the scanner, or None.
    contrast_hint
        ``"contrast"``, ``"non-contrast"`` or ``"unknown"`` from the agent and the description.
    orientation
        ``"axial"``, ``"coronal"``, ``"sagittal"`` or ``"oblique"`` (from the slice normal).
    source
        The file or folder the volume was read from.
    padding_values_hu
        Distinct HU values found in padding (outside the field of view) that were set to air.
    padded_voxels
        How many voxels were padding.
    warnings
        Geometry and content problems worth showing a reader (irregular spacing, gantry tilt,
        missing slices, ...). Empty when none.
    extra
        Further header facts (manufacturer, kVp, slice thickness, transfer syntax, ...).
    """

    series_uid: str | None = None
    study_uid: str | None = None
    description: str = ""
    modality: str = "CT"
    contrast_agent: str | None = None
    contrast_hint: str = "unknown"
    orientation: str = "axial"
    source: str = ""
    padding_values_hu: tuple[int, ...] = ()
    padded_voxels: int = 0
    warnings: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Volume:
    """A CT series in Hounsfield units with its patient geometry.

    Attributes
    ----------
    hu : np.ndarray
        int16 array shaped (z, y, x) in HU; slices sorted along the slice normal, inferior to
        superior for axial series. Padding is already air (-1024).
    spacing : tuple of float
        Voxel size (z, y, x) in mm; z is the step between slice positions.
    origin : tuple of float
        Patient LPS position (x, y, z) in mm of voxel [0, 0, 0], as SimpleITK reports it.
    direction : np.ndarray
        3 × 3 direction cosines as SimpleITK reports them: column k is the patient (x, y, z)
        direction of array index axis k in SimpleITK order (column x, row y, slice z).
    slice_uids : tuple of str or None
        SOPInstanceUID of each slice in z order, or None for non-DICOM sources.
    meta : VolumeMeta
        Provenance, contrast hints and warnings.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    slice_uids: tuple[str, ...] | None = None
    meta: VolumeMeta = field(default_factory=VolumeMeta)

    def __post_init__(self) -> None:
        if self.hu.ndim != 3 or self.hu.dtype != np.int16:
            raise ValueError(f"hu must be int16 (z, y, x), got {self.hu.dtype} {self.hu.shape}")
        if np.shape(self.direction) != (3, 3):
            raise ValueError(f"direction must be 3 × 3, got shape {np.shape(self.direction)}")
        if self.slice_uids is not None and len(self.slice_uids) != self.hu.shape[0]:
            raise ValueError(f"{len(self.slice_uids)} slice UIDs for {self.hu.shape[0]} slices")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (z, y, x)."""
        z, y, x = self.hu.shape
        return z, y, x

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in mL (spacing in mm: mm³ / 1000)."""
        return float(np.prod(self.spacing)) / 1000.0

    def index_to_lps(self, z: float, y: float, x: float) -> np.ndarray:
        """Patient LPS position (x, y, z) in mm of array index (z, y, x)."""
        index_xyz = np.array([x, y, z], dtype=float)
        spacing_xyz = np.array(self.spacing[::-1], dtype=float)
        return np.asarray(self.origin, dtype=float) + np.asarray(self.direction) @ (
            spacing_xyz * index_xyz
        )

    def slice_positions_mm(self) -> np.ndarray:
        """Position of each slice along the z array axis in mm, shape (z,).

        For axial series this is the patient z (LPS, superior positive) of each slice centre,
        the number a radiologist reads as "slice position".
        """
        steps = np.arange(self.shape[0], dtype=float) * self.spacing[0]
        axis = np.asarray(self.direction)[:, 2]
        normal_component = axis[int(np.argmax(np.abs(axis)))]
        return float(self.origin[int(np.argmax(np.abs(axis)))]) + steps * normal_component
