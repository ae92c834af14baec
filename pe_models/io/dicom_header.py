"""Read the header facts of one DICOM file, without decoding its pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from pe_models.io.errors import CorruptFileError, NoPixelDataError

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


@dataclass(frozen=True)
class DicomHeader:
    """Header facts of one DICOM image file needed to group, sort and decode it.

    Positions and orientation are in patient LPS coordinates (x, y, z), mm.
    """

    path: Path
    sop_uid: str
    series_uid: str
    study_uid: str
    modality: str
    sop_class_uid: str
    transfer_syntax_uid: str
    rows: int
    columns: int
    n_frames: int
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    spacing_between_slices: float | None
    gantry_tilt: float
    instance_number: int | None
    image_type: tuple[str, ...]
    rescale_slope: float
    rescale_intercept: float
    pixel_padding_value: int | None
    pixel_padding_range_limit: int | None
    series_description: str
    series_number: int | None
    contrast_agent: str | None
    patient_id: str
    study_date: str
    manufacturer: str
    kvp: str

    @property
    def is_localizer(self) -> bool:
        """True for scout / topogram images, which are never part of the axial volume."""
        return "LOCALIZER" in self.image_type

    @property
    def is_ct(self) -> bool:
        """True when the file holds CT values (Modality CT, or a CT SOP class without one)."""
        if self.modality:
            return self.modality == "CT"
        return self.sop_class_uid in (CT_IMAGE_STORAGE, ENHANCED_CT_IMAGE_STORAGE)


def _float_or_none(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _floats(value: object, n: int) -> tuple[float, ...] | None:
    try:
        numbers = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    if len(numbers) != n or not np.all(np.isfinite(numbers)):
        return None
    return numbers


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return str(value).strip() if value is not None else ""


def read_header(path: Path) -> DicomHeader | None:
    """Read the header of one file.

    Parameters
    ----------
    path
        Any file; non-DICOM files are expected in study folders.

    Returns
    -------
    DicomHeader or None
        None when the file is not DICOM (no "DICM" preamble) or is a DICOMDIR.

    Raises
    ------
    NoPixelDataError
        The file is DICOM but holds no image (a report, a structure set, a truncated file).
    CorruptFileError
        The file claims to be DICOM but cannot be parsed.
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        return None
    except (OSError, EOFError, ValueError, KeyError, TypeError) as error:
        raise CorruptFileError(path, f"cannot be parsed as DICOM ({error})") from error
    sop_class_uid = str(ds.get("SOPClassUID", ""))
    if sop_class_uid == MEDIA_STORAGE_DIRECTORY:
        return None
    if "Rows" not in ds or "Columns" not in ds:
        kind = UID(sop_class_uid).name if sop_class_uid else "unknown SOP class"
        raise NoPixelDataError(
            path, f"is DICOM ({kind}) without an image: a report, a structure set or truncated"
        )
    transfer_syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
    padding_value = ds.get("PixelPaddingValue")
    padding_limit = ds.get("PixelPaddingRangeLimit")
    spacing = _floats(ds.get("PixelSpacing"), 2)
    return DicomHeader(
        path=path,
        sop_uid=str(ds.get("SOPInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        modality=_text(ds, "Modality").upper(),
        sop_class_uid=sop_class_uid,
        transfer_syntax_uid=transfer_syntax,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        n_frames=_int_or_none(ds.get("NumberOfFrames")) or 1,
        position=_floats(ds.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        pixel_spacing=spacing,  # type: ignore[arg-type]
        slice_thickness=_float_or_none(ds.get("SliceThickness")),
        spacing_between_slices=_float_or_none(ds.get("SpacingBetweenSlices")),
        gantry_tilt=_float_or_none(ds.get("GantryDetectorTilt")) or 0.0,
        instance_number=_int_or_none(ds.get("InstanceNumber")),
        image_type=tuple(str(v).upper() for v in (ds.get("ImageType") or ())),
        rescale_slope=_float_or_none(ds.get("RescaleSlope")) or 1.0,
        rescale_intercept=_float_or_none(ds.get("RescaleIntercept")) or 0.0,
        pixel_padding_value=_int_or_none(padding_value),
        pixel_padding_range_limit=_int_or_none(padding_limit),
        series_description=_text(ds, "SeriesDescription"),
        series_number=_int_or_none(ds.get("SeriesNumber")),
        contrast_agent=_text(ds, "ContrastBolusAgent") or None,
        patient_id=_text(ds, "PatientID"),
        study_date=_text(ds, "StudyDate"),
        manufacturer=_text(ds, "Manufacturer"),
        kvp=_text(ds, "KVP"),
    )
