"""Find the series in a folder, DICOMDIR or file without decoding any pixels."""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.fileset import FileSet

from pe_models.io.dicom_header import DicomHeader, read_header, read_header_fast
from pe_models.io.errors import (
    CorruptFileError,
    NoDicomFoundError,
    NoPixelDataError,
    StudyReadError,
    UnsupportedFileError,
)
from pe_models.io.geometry import orientation_name
from pe_models.io.transfer_syntax import decoder_problem

log = logging.getLogger(__name__)

IMAGE_FILE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
"""Volume files read through SimpleITK."""

_CONTRAST_WORDS = re.compile(
    r"\b(CTA|CTPA|ANGIO\w*|PE\s*PROTOCOL|C\+|W\s*/\s*CON\w*|WITH\s+CON\w*|CONTRAST|"
    r"ARTERIAL|PORTAL|VENOUS|ENHANCED|BOLUS)(?=\W|$)",
    re.IGNORECASE,
)
_NON_CONTRAST_WORDS = re.compile(
    r"(\bW\s*/\s*O\b|\bWITHOUT\b|\bNON[-\s]?CON\w*|\bNONCON\w*|\bC-(?=\W|$)|\bPLAIN\b|"
    r"\bNATIVE\b|\bUNENHANCED\b)",
    re.IGNORECASE,
)


def contrast_hint(agent: str | None, description: str) -> str:
    """Guess the contrast phase from the header.

    Parameters
    ----------
    agent
        ContrastBolusAgent; any non-empty value other than "NONE"/"NO" means contrast.
    description
        Series (and optionally study) description.

    Returns
    -------
    str
        ``"contrast"``, ``"non-contrast"`` or ``"unknown"``. The image itself is the real
        evidence; this is only what the header claims.
    """
    if agent and agent.strip().upper() not in ("NONE", "NO", "N", "NIL", "-"):
        return "contrast"
    if _NON_CONTRAST_WORDS.search(description):
        return "non-contrast"
    if _CONTRAST_WORDS.search(description):
        return "contrast"
    return "unknown"


@dataclass(frozen=True)
class SeriesInfo:
    """One series found by :func:`scan`, ready to show in a series browser.

    Attributes
    ----------
    series_uid
        SeriesInstanceUID, or None for a NIfTI/NRRD/MHA file.
    n_images
        Image files in the series (localizers included).
    orientation
        Plane of the slices: ``"axial"``, ``"coronal"``, ``"sagittal"`` or ``"oblique"``.
    contrast_agent, contrast_hint
        ContrastBolusAgent and the guess of :func:`contrast_hint`.
    problem
        Why the series cannot be loaded (not CT, undecodable, multi-frame), or None.
    headers
        Header facts of every image (DICOM only), in file-discovery order.
    path
        The image file (non-DICOM) or the folder scanned.
    """

    series_uid: str | None
    study_uid: str | None
    description: str
    modality: str
    n_images: int
    orientation: str
    rows: int
    columns: int
    contrast_agent: str | None
    contrast_hint: str
    series_number: int | None
    patient_id: str
    study_date: str
    transfer_syntaxes: tuple[str, ...]
    problem: str | None
    headers: tuple[DicomHeader, ...]
    path: Path


def _walk_files(root: Path) -> Iterator[Path]:
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name


def _dicomdir_files(path: Path) -> list[Path]:
    try:
        file_set = FileSet(pydicom.dcmread(path))
    except Exception as error:  # pydicom raises many types for a broken DICOMDIR
        raise CorruptFileError(path, f"is not a readable DICOMDIR ({error})") from error
    return [Path(instance.path) for instance in file_set]


def is_image_file(path: Path) -> bool:
    """True for NIfTI/NRRD/MHA names, which SimpleITK reads."""
    return path.name.lower().endswith(IMAGE_FILE_SUFFIXES)


def _series_from_headers(headers: Sequence[DicomHeader], root: Path) -> SeriesInfo:
    # GDCM headers carry undecoded text and no transfer syntax: take those from pydicom.
    first = read_header(headers[0].path) or headers[0]
    images = [h for h in headers if not h.is_localizer] or list(headers)
    if first.orientation is not None:
        normal = np.cross(first.orientation[:3], first.orientation[3:])
        orientation = orientation_name(normal)
    else:
        orientation = "axial"
    syntaxes = tuple(sorted({h.transfer_syntax_uid for h in (first, *headers[1:])} - {""}))
    problem = None
    if not first.is_ct:
        problem = f"modality {first.modality or 'unknown'} is not CT"
    elif any(h.n_frames > 1 for h in images):
        problem = "multi-frame (enhanced) CT is not supported yet; export single-frame images"
    else:
        problem = next(filter(None, map(decoder_problem, syntaxes)), None)
    return SeriesInfo(
        series_uid=first.series_uid,
        study_uid=first.study_uid,
        description=first.series_description,
        modality=first.modality or ("CT" if first.is_ct else ""),
        n_images=len(headers),
        orientation=orientation,
        rows=first.rows,
        columns=first.columns,
        contrast_agent=first.contrast_agent,
        contrast_hint=contrast_hint(first.contrast_agent, first.series_description),
        series_number=first.series_number,
        patient_id=first.patient_id,
        study_date=first.study_date,
        transfer_syntaxes=syntaxes,
        problem=problem,
        headers=tuple(headers),
        path=root,
    )


def _image_file_series(path: Path) -> SeriesInfo:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise CorruptFileError(path, f"cannot be read as an image ({error})") from error
    size = reader.GetSize()
    direction = np.reshape(reader.GetDirection(), (len(size), len(size)))
    orientation = orientation_name(direction[:, 2]) if len(size) == 3 else "axial"
    return SeriesInfo(
        series_uid=None,
        study_uid=None,
        description=path.name,
        modality="CT",
        n_images=size[2] if len(size) >= 3 else 1,
        orientation=orientation,
        rows=size[1],
        columns=size[0],
        contrast_agent=None,
        contrast_hint=contrast_hint(None, path.name),
        series_number=None,
        patient_id="",
        study_date="",
        transfer_syntaxes=(),
        problem=None,
        headers=(),
        path=path,
    )


def _read_any_header(path: Path) -> DicomHeader | StudyReadError | None:
    """GDCM's header reader (parallel) first; pydicom judges the files GDCM refuses."""
    try:
        return read_header_fast(path) or read_header(path)
    except (CorruptFileError, NoPixelDataError) as error:
        return error


def scan(path: str | os.PathLike[str]) -> list[SeriesInfo]:
    """List the series under a path without decoding pixels.

    Parameters
    ----------
    path
        A folder (searched recursively), a DICOMDIR, a single DICOM file, or a NIfTI / NRRD /
        MHA file.

    Returns
    -------
    list of SeriesInfo
        Sorted by study, series number and description. Series that cannot be loaded are
        listed too, with ``problem`` saying why.

    Raises
    ------
    NoDicomFoundError
        A folder or DICOMDIR holds no DICOM image.
    UnsupportedFileError
        A single file is neither DICOM nor a volume format we read.
    CorruptFileError
        A single file or DICOMDIR cannot be parsed.
    FileNotFoundError
        The path does not exist.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    if root.is_file() and is_image_file(root):
        return [_image_file_series(root)]
    if root.is_file() and root.name.upper() == "DICOMDIR":
        files = _dicomdir_files(root)
    elif root.is_file():
        files = [root]
    else:
        files = list(_walk_files(root))

    by_series: dict[str, dict[str, DicomHeader]] = defaultdict(dict)
    unreadable: list[StudyReadError] = []
    # The first read runs alone: ITK registers its GDCM reader lazily, and two threads doing
    # that at once have corrupted the heap here once (a "double free" at exit).
    results = [_read_any_header(files[0])] if files else []
    with ThreadPoolExecutor(max_workers=os.cpu_count(), thread_name_prefix="dicom-scan") as pool:
        results += pool.map(_read_any_header, files[1:])
    for file, header in zip(files, results, strict=True):
        if isinstance(header, StudyReadError):
            log.info("skipped %s", header)  # reports and structure sets sit beside images
            unreadable.append(header)
        elif header is not None:
            # A SOPInstanceUID seen twice is the same image copied twice: keep one.
            by_series[header.series_uid].setdefault(header.sop_uid or str(file), header)

    if not by_series:
        if root.is_file() and unreadable:
            raise unreadable[0]
        if root.is_file():
            raise UnsupportedFileError(
                root, "is neither DICOM nor a NIfTI/NRRD/MHA volume, or holds no image"
            )
        detail = ""
        if unreadable:
            detail = f" ({len(unreadable)} DICOM without image; first: {unreadable[0]})"
        raise NoDicomFoundError(root, f"no DICOM image found among {len(files)} file(s){detail}")
    series = [_series_from_headers(list(h.values()), root) for h in by_series.values()]
    return sorted(
        series,
        key=lambda s: (s.study_uid or "", s.series_number or 0, s.description, s.series_uid),
    )
