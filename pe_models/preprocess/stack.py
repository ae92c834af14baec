"""Multi-window stacking: one HU slice becomes model input channels, one per window."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pe_models.preprocess.windows import apply_window, get_preset

WINDOW_STACKS: dict[str, tuple[str, ...]] = {
    "single": ("vascular",),
    "dwl": ("vascular", "lung"),
    "twl": ("vascular", "lung", "mediastinal"),
    "rgb": ("lung", "vascular", "mediastinal"),
}
"""Named channel layouts. ``dwl`` / ``twl``: seed 2's double / triple window level input;
``rgb``: the three-window pseudo-colour image of the RSNA-STR PE winners that seed 1's
ImageNet-style backbones take."""

NORMALISATIONS = ("unit", "zero_center")


@dataclass(frozen=True)
class WindowStack:
    """Callable turning HU into stacked, windowed, normalised channels.

    Shared by training and inference so both see identical inputs.

    Parameters
    ----------
    windows
        Preset names, one per output channel, or the name of a layout in ``WINDOW_STACKS``.
    normalisation
        ``"unit"``: each channel in [0, 1]; ``"zero_center"``: in [-1, 1] (seed 2 normalises
        its windows to zero centre).
    """

    windows: tuple[str, ...] | str = "dwl"
    normalisation: str = "unit"

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"unknown normalisation {self.normalisation!r}; valid: {', '.join(NORMALISATIONS)}"
            )
        for name in self.channel_windows:
            get_preset(name)  # fail at construction, not at the first slice

    @property
    def channel_windows(self) -> tuple[str, ...]:
        """The window of each output channel, in order."""
        if isinstance(self.windows, str):
            if self.windows not in WINDOW_STACKS:
                raise KeyError(
                    f"unknown window stack {self.windows!r}; valid: {', '.join(WINDOW_STACKS)}"
                )
            return WINDOW_STACKS[self.windows]
        return tuple(self.windows)

    def __call__(self, hu: np.ndarray) -> np.ndarray:
        """Stack the windows of ``hu``.

        Parameters
        ----------
        hu
            (y, x) slice or (z, y, x) slices in HU.

        Returns
        -------
        np.ndarray
            float32 (C, y, x) for a slice, (z, C, y, x) for slices.
        """
        channel_axis = 0 if hu.ndim == 2 else 1
        channels = np.stack(
            [apply_window(hu, name) for name in self.channel_windows], axis=channel_axis
        )
        if self.normalisation == "zero_center":
            channels = channels * np.float32(2.0) - np.float32(1.0)
        return channels
