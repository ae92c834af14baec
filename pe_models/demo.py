"""The study the viewer opens with ``--demo``: a synthetic CTPA phantom with known emboli."""

from __future__ import annotations

import os
from pathlib import Path

from pe_models.synth.phantom import PHANTOM_VERSION, generate_phantom
from pe_models.synth.writers import write_study

DEMO_SEED = 2
"""Seed of the demo phantom: a 3.5 mL eccentric clot in the pulmonary trunk and a 1.2 mL
polo-mint clot in the left pulmonary artery (phantom generator version 2)."""

CACHE_ENV = "PE_VIEWER_CACHE"


def cache_dir() -> Path:
    """Where generated studies are kept: ``$PE_VIEWER_CACHE``, else the user cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pe-viewer"


def demo_study_path() -> Path:
    """The DICOM folder of the demo phantom, written on first use (about 10 s) and cached.

    Returns
    -------
    Path
        A folder of CT Image Storage files; its labels and masks lie beside it.
    """
    folder = cache_dir() / f"demo-phantom-v{PHANTOM_VERSION}-seed{DEMO_SEED}"
    if not (folder / "dicom").is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_study(generate_phantom(DEMO_SEED, "pe", "full"), folder)
        except (FileExistsError, OSError):
            if not (folder / "dicom").is_dir():  # not another process that got there first
                raise
    return folder / "dicom"
