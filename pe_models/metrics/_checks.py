"""Private input checks and number formatting shared by the metric modules."""

from __future__ import annotations

from collections.abc import Sized

import numpy as np
import torch
from numpy.typing import ArrayLike


def _vector(values: ArrayLike, name: str, dtype: type = np.float64) -> np.ndarray:
    array: np.ndarray = np.asarray(values, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    return array


def _same_length(a: Sized, b: Sized, names: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{names} have different lengths: {len(a)} != {len(b)}")


def _binary_labels(values: ArrayLike, name: str) -> np.ndarray:
    labels = _vector(values, name)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{name} must contain only 0 and 1")
    return labels.astype(np.int64)


def _probabilities(values: ArrayLike, name: str) -> np.ndarray:
    scores = _vector(values, name)
    if not np.isfinite(scores).all() or (scores < 0).any() or (scores > 1).any():
        raise ValueError(f"{name} must be probabilities in [0, 1] (no NaN)")
    return scores


def _f(value: torch.Tensor) -> float:
    # torchmetrics computes in float32; 7 decimals drop its noise (0.6666666865 -> 0.6666667).
    return round(float(value), 7)


def _ratio_or_none(value: torch.Tensor, denominator: int) -> float | None:
    return _f(value) if denominator > 0 else None


def count_text(hits: int, total: int) -> str:
    """A count as seed 2 prints it, e.g. ``"100% (4/4)"`` or ``"66.7% (2/3)"``; ``"n/a (0/0)"``."""
    if total == 0:
        return "n/a (0/0)"
    percent = f"{100.0 * hits / total:.1f}".rstrip("0").rstrip(".")
    return f"{percent}% ({hits}/{total})"


def _boxes(values: ArrayLike, columns: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, columns))
    if array.ndim != 2 or array.shape[1] != columns:
        raise ValueError(f"{name} must have shape (n, {columns}), got {array.shape}")
    if not np.isfinite(array).all() or (array[:, 2:4] < array[:, 0:2]).any():
        raise ValueError(f"{name} must be finite x0, y0, x1, y1 boxes with x1 >= x0, y1 >= y0")
    return array
