"""Find and read CT studies: DICOM folders, DICOMDIRs, single files, NIfTI / NRRD / MHA.

The two entry points are :func:`scan` (list series, no pixel decoding) and :func:`load`
(one series into a :class:`~pe_models.volume.Volume`).
"""

from __future__ import annotations

import os
from pathlib import Path

from pe_models.io.errors import (
    CorruptFileError,
    DuplicateSliceError,
    InconsistentSeriesError,
    LoadCancelled,
    MultipleSeriesError,
    NoDicomFoundError,
    NoPixelDataError,
    NotCTError,
    StudyReadError,
    UnsupportedFileError,
    UnsupportedTransferSyntaxError,
)
from pe_models.io.image_file import load_image_file, write_image
from pe_models.io.load_dicom import (
    CancelCallback,
    LoadProgress,
    ProgressCallback,
    load_dicom_series,
)
from pe_models.io.series import SeriesInfo, is_image_file, scan
from pe_models.volume import Volume

__all__ = [
    "CorruptFileError",
    "DuplicateSliceError",
    "InconsistentSeriesError",
    "LoadCancelled",
    "LoadProgress",
    "MultipleSeriesError",
    "NoDicomFoundError",
    "NoPixelDataError",
    "NotCTError",
    "SeriesInfo",
    "StudyReadError",
    "UnsupportedFileError",
    "UnsupportedTransferSyntaxError",
    "choose_series",
    "load",
    "load_series",
    "scan",
    "write_image",
]


def load_series(
    series: SeriesInfo,
    *,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCallback | None = None,
) -> Volume:
    """Load a series already found by :func:`scan` (skips reading the headers again)."""
    if not series.headers:
        return load_image_file(series.path)
    return load_dicom_series(series, progress=progress, should_cancel=should_cancel)


def load(
    path: str | os.PathLike[str],
    series_uid: str | None = None,
    *,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCallback | None = None,
) -> Volume:
    """Load one series into a :class:`Volume`.

    Parameters
    ----------
    path
        A DICOM folder, DICOMDIR, single DICOM file, or NIfTI / NRRD / MHA file.
    series_uid
        The series to load when the path holds several; may be omitted when there is one.
    progress
        Called with a :class:`LoadProgress` as each DICOM slice is decoded.
    should_cancel
        Polled between slices; True stops the load with :class:`LoadCancelled`.

    Raises
    ------
    StudyReadError
        A subclass naming the file and the problem: nothing found, damaged file, not CT,
        unsupported compression, inconsistent series, several series and none chosen, ...
    LoadCancelled
        The load was cancelled.
    """
    root = Path(path)
    if root.is_file() and is_image_file(root):
        return load_image_file(root)
    chosen = choose_series(root, scan(root), series_uid)
    return load_series(chosen, progress=progress, should_cancel=should_cancel)


def choose_series(
    path: str | os.PathLike[str], found: list[SeriesInfo], series_uid: str | None = None
) -> SeriesInfo:
    """The series to load from what :func:`scan` found.

    With no ``series_uid``, the one loadable series is taken (a dose report or an MR series
    beside a CT series needs no choice).

    Raises
    ------
    MultipleSeriesError
        Several loadable series and none chosen.
    StudyReadError
        ``series_uid`` is not among them.
    """
    if series_uid is not None:
        matching = [s for s in found if s.series_uid == series_uid]
        if not matching:
            listed = ", ".join(str(s.series_uid) for s in found)
            raise StudyReadError(path, f"has no series {series_uid}; found {listed}")
        return matching[0]
    loadable = [s for s in found if s.problem is None]
    if len(loadable) > 1:
        raise MultipleSeriesError(path, found)
    return (loadable or found)[0]
