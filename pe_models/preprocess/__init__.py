"""Preprocessing shared by training and inference: HU windows, window stacks, lung crop."""

from pe_models.preprocess.lung_crop import (
    CropBox,
    dynamic_lung_crop,
    fixed_center_crop,
    lung_air_mask,
    study_lung_crop,
    thorax_crop,
)
from pe_models.preprocess.stack import WINDOW_STACKS, WindowStack
from pe_models.preprocess.windows import WindowPreset, apply_window, get_preset, window_presets

__all__ = [
    "WINDOW_STACKS",
    "CropBox",
    "WindowPreset",
    "WindowStack",
    "apply_window",
    "dynamic_lung_crop",
    "fixed_center_crop",
    "get_preset",
    "lung_air_mask",
    "study_lung_crop",
    "thorax_crop",
    "window_presets",
]
