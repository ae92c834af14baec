"""HU window presets (stored in ``resources/window_presets.json``) and windowing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

import numpy as np

from pe_models.resources import resources_dir


@dataclass(frozen=True)
class WindowPreset:
    """A display / model-input window.

    Attributes
    ----------
    name
        Identifier used in configs and the UI (``"vascular"``, ``"lung"``, ...).
    level, width
        Window centre and width in HU.
    description
        What the window shows, and where its values come from.
    key
        Keyboard shortcut in the viewer, or "" for none.
    """

    name: str
    level: float
    width: float
    description: str = ""
    key: str = ""

    @property
    def low(self) -> float:
        """Lowest HU of the window (maps to 0)."""
        return self.level - self.width / 2

    @property
    def high(self) -> float:
        """Highest HU of the window (maps to 1)."""
        return self.level + self.width / 2


@cache
def window_presets() -> dict[str, WindowPreset]:
    """All presets by name, in the order of the resources file."""
    path = resources_dir() / "window_presets.json"
    entries = json.loads(path.read_text(encoding="utf-8"))["presets"]
    return {entry["name"]: WindowPreset(**entry) for entry in entries}


def get_preset(name: str) -> WindowPreset:
    """Look a preset up by name.

    Raises
    ------
    KeyError
        Unknown name; the message lists the valid ones.
    """
    presets = window_presets()
    if name not in presets:
        raise KeyError(f"unknown window preset {name!r}; valid: {', '.join(presets)}")
    return presets[name]


def apply_window(hu: np.ndarray, window: WindowPreset | str) -> np.ndarray:
    """Map HU to [0, 1] through a window, clipping outside it.

    Parameters
    ----------
    hu
        HU array of any shape, e.g. (y, x) or (z, y, x).
    window
        A preset or its name.

    Returns
    -------
    np.ndarray
        float32, same shape, 0 at ``window.low`` and 1 at ``window.high``.
    """
    preset = get_preset(window) if isinstance(window, str) else window
    scaled = (np.asarray(hu, dtype=np.float32) - np.float32(preset.low)) / np.float32(preset.width)
    return np.clip(scaled, 0.0, 1.0, out=scaled)
