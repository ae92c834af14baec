"""Write small synthetic CT DICOM series for loader tests (no real patient data)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def ramp_volume(shape: tuple[int, int, int] = (6, 32, 40), seed: int = 0) -> np.ndarray:
    """int16 HU (z, y, x) where every slice differs, so order mistakes show."""
    rng = np.random.default_rng(seed)
    volume = rng.integers(-1000, 1500, size=shape, dtype=np.int16)
    volume[:, 0, 0] = np.arange(shape[0], dtype=np.int16) * 100  # z written into a pixel
    return volume


def ct_dataset(
    hu_slice: np.ndarray,
    position: Sequence[float],
    *,
    series_uid: str,
    study_uid: str,
    orientation: Sequence[float] = AXIAL,
    pixel_spacing: tuple[float, float] = (0.7, 0.7),
    slope: float = 1.0,
    intercept: float = -1024.0,
    instance_number: int = 1,
    modality: str = "CT",
    description: str = "SYNTHETIC CTA CHEST",
    contrast_agent: str | None = "OMNIPAQUE",
    padding_value: int | None = None,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
) -> Dataset:
    """An uncompressed single-frame CT image whose stored values give ``hu_slice``."""
    stored = np.rint((hu_slice.astype(np.float64) - intercept) / slope).astype(np.int16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = series_uid
    ds.StudyInstanceUID = study_uid
    ds.FrameOfReferenceUID = generate_uid()
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.PatientName = "SYNTHETIC^TEST"
    ds.PatientID = "SYN-0001"
    ds.SeriesDescription = description
    ds.SeriesNumber = 3
    ds.InstanceNumber = instance_number
    ds.ImageType = list(image_type)
    if contrast_agent:
        ds.ContrastBolusAgent = contrast_agent
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [pixel_spacing[0], pixel_spacing[1]]
    ds.SliceThickness = 3.0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    if padding_value is not None:
        ds.PixelPaddingValue = padding_value
    ds.PixelData = stored.tobytes()
    return ds


def write_series(
    folder: Path,
    hu: np.ndarray,
    *,
    z_positions: Sequence[float] | None = None,
    origin_xy: tuple[float, float] = (-100.0, -120.0),
    shuffle_names: bool = True,
    **kwargs: object,
) -> list[Path]:
    """Write (z, y, x) HU as one axial series, file names in scrambled order.

    Returns the paths in z order (inferior → superior).
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = str(kwargs.pop("series_uid", generate_uid()))
    study_uid = str(kwargs.pop("study_uid", generate_uid()))
    if z_positions is None:
        z_positions = [-50.0 + 2.5 * z for z in range(hu.shape[0])]
    rng = np.random.default_rng(1)
    names = rng.permutation(hu.shape[0]) if shuffle_names else np.arange(hu.shape[0])
    paths = []
    for z, (hu_slice, z_mm) in enumerate(zip(hu, z_positions, strict=True)):
        ds = ct_dataset(
            hu_slice,
            (origin_xy[0], origin_xy[1], z_mm),
            series_uid=series_uid,
            study_uid=study_uid,
            instance_number=hu.shape[0] - z,  # reversed, as some scanners do
            **kwargs,  # type: ignore[arg-type]
        )
        path = folder / f"IM{names[z]:04d}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
