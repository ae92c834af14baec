"""The study the viewer opens with ``--demo``."""

from __future__ import annotations

from pathlib import Path

from pydicom.data import get_testdata_file


def demo_study_path() -> Path:
    """A real CT image that ships inside the pydicom wheel (MIT licence), read offline.

    It is one 128 × 128 slice; the synthetic CTPA phantom with known PE takes its place once
    the phantom generator exists.

    Raises
    ------
    FileNotFoundError
        The pydicom installation lacks its bundled test file.
    """
    path = get_testdata_file("CT_small.dcm", download=False)
    if path is None:
        raise FileNotFoundError("pydicom's bundled CT_small.dcm is missing from this install")
    return Path(path)
