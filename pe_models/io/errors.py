"""Exceptions raised while finding and reading studies.

Every error names the file (or folder) and the problem in words a reader can act on; the viewer
shows ``str(error)`` as it is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pe_models.io.series import SeriesInfo


class StudyReadError(Exception):
    """Base of every error about an input file or folder.

    Parameters
    ----------
    path
        The file or folder at fault.
    problem
        What is wrong, as a sentence fragment ("no pixel data").
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class NoDicomFoundError(StudyReadError):
    """A folder (or DICOMDIR) holds no readable DICOM image."""


class CorruptFileError(StudyReadError):
    """A file could not be parsed or its pixel data is truncated."""


class NoPixelDataError(StudyReadError):
    """A DICOM file carries no image (a report, a structure set, a truncated file)."""


class NotCTError(StudyReadError):
    """The series is not CT, so its values are not Hounsfield units."""


class UnsupportedTransferSyntaxError(StudyReadError):
    """No installed decoder can read this compression."""


class UnsupportedFileError(StudyReadError):
    """The file is neither DICOM nor an image format we read (NIfTI, NRRD, MHA)."""


class InconsistentSeriesError(StudyReadError):
    """Images of one series disagree in size, orientation or position."""


class DuplicateSliceError(InconsistentSeriesError):
    """Two images of one series lie at the same position."""


class MultipleSeriesError(StudyReadError):
    """A folder holds several series and none was chosen.

    Attributes
    ----------
    series
        The series found, so a caller can offer a choice.
    """

    def __init__(self, path: str | os.PathLike[str], series: Sequence[SeriesInfo]) -> None:
        self.series = tuple(series)
        listing = "; ".join(
            f"{s.series_uid} ({s.modality}, {s.n_images} images, '{s.description}')"
            for s in self.series
        )
        super().__init__(path, f"holds {len(self.series)} series, choose one by its UID: {listing}")


class LoadCancelled(Exception):  # noqa: N818 - a normal outcome, not an error
    """Raised when ``should_cancel`` asked a load to stop; callers treat it as normal."""
