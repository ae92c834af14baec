"""Where the static files in ``resources/`` are, for a source checkout and a frozen app."""

from __future__ import annotations

import os
import sys
from pathlib import Path

RESOURCES_ENV = "PE_VIEWER_RESOURCES"
"""Environment variable naming a resources folder to use instead of the built-in one."""


def resources_dir() -> Path:
    """The folder holding window presets, icons, styles and the bundled model bundles.

    Looked up in order: ``$PE_VIEWER_RESOURCES``, the PyInstaller bundle, the source tree
    (``resources/`` beside the packages).

    Raises
    ------
    FileNotFoundError
        None of these exists.
    """
    candidates = []
    if os.environ.get(RESOURCES_ENV):
        candidates.append(Path(os.environ[RESOURCES_ENV]))
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        candidates.append(Path(frozen_root) / "resources")
    candidates.append(Path(__file__).resolve().parent.parent / "resources")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "resources folder not found; looked in " + ", ".join(map(str, candidates))
    )
