"""numpy images to Qt pixmaps."""

from __future__ import annotations

import numpy as np
from PySide6 import QtGui


def to_pixmap(image: np.ndarray) -> QtGui.QPixmap:
    """A pixmap of a uint8 (h, w) grey or (h, w, 4) RGBA (straight alpha) image; copies it."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    formats = {2: QtGui.QImage.Format.Format_Grayscale8, 3: QtGui.QImage.Format.Format_RGBA8888}
    if image.ndim not in formats or (image.ndim == 3 and image.shape[2] != 4):
        raise ValueError(f"expected (h, w) or (h, w, 4) uint8, got shape {image.shape}")
    qimage = QtGui.QImage(
        image.data, image.shape[1], image.shape[0], image.strides[0], formats[image.ndim]
    )
    return QtGui.QPixmap.fromImage(qimage)  # a deep copy: the array may go
