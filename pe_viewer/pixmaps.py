"""numpy images and short texts to Qt pixmaps, and an item that shows such a text."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets


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


@lru_cache(maxsize=512)
def text_pixmap(text: str, color: str, background: str | None = None) -> QtGui.QPixmap:
    """Text drawn once, in screen pixels, on a ``background`` box when given.

    Cached, because laying out text costs more than drawing a pixmap, and the viewer shows
    the same few strings (scores, triage labels) again and again.
    """
    font = QtGui.QFont()
    font.setBold(background is not None)
    metrics = QtGui.QFontMetrics(font)
    padding = (6, 3) if background is not None else (1, 0)
    flags = QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop
    text_size = metrics.boundingRect(QtCore.QRect(0, 0, 4096, 4096), flags, text).size()
    size = text_size.grownBy(QtCore.QMargins(*padding, *padding))
    screen = QtGui.QGuiApplication.primaryScreen()
    ratio = screen.devicePixelRatio() if screen is not None else 1.0
    pixmap = QtGui.QPixmap(size * ratio)
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(QtGui.QColor(background or QtCore.Qt.GlobalColor.transparent))
    painter = QtGui.QPainter(pixmap)
    painter.setFont(font)
    painter.setPen(QtGui.QColor(color))
    painter.drawText(QtCore.QRect(QtCore.QPoint(*padding), text_size), flags, text)
    painter.end()
    return pixmap


class TextItem(QtWidgets.QGraphicsPixmapItem):
    """A label drawn from a cached pixmap, at a fixed size on screen.

    Parameters
    ----------
    parent
        The item it sits on; its position is in the parent's coordinates.
    anchor
        Which point of the label sits at its position, as fractions of its (width, height):
        (0, 1) is the bottom-left corner, (1, 0) the top-right.
    """

    def __init__(
        self, parent: QtWidgets.QGraphicsItem, anchor: tuple[float, float] = (0.0, 0.0)
    ) -> None:
        super().__init__(parent)
        self.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self._drawn: tuple[str, str, str | None] = ("", "", None)  # text, colour, background
        self._anchor = anchor

    @property
    def text(self) -> str:
        """The text shown ("" before the first :meth:`set_text`)."""
        return self._drawn[0]

    def set_text(self, text: str, color: str, background: str | None = None) -> None:
        """Show ``text`` in ``color``, on a ``background`` box when given."""
        if (text, color, background) == self._drawn:
            return
        self._drawn = text, color, background
        pixmap = text_pixmap(text, color, background)
        self.setPixmap(pixmap)
        size = pixmap.deviceIndependentSize()
        self.setOffset(-self._anchor[0] * size.width(), -self._anchor[1] * size.height())
