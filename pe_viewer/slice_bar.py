"""A thin vertical bar that shows which slice is on screen and moves there on click or drag."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

GROOVE_COLOR = "#202226"
HANDLE_COLOR = "#9aa4b2"


class SliceBar(QtWidgets.QWidget):
    """Slice position indicator: slice 0 at the top, the last slice at the bottom.

    It repaints two rectangles per slice change, where a styled ``QSlider`` costs more to
    repaint than the overlays of the slice together (see ``benchmarks/render.py``).

    Signals
    -------
    value_changed(int)
        The slice the reader clicked or dragged to.
    """

    value_changed = QtCore.Signal(int)

    WIDTH = 12
    MIN_HANDLE = 16  # px: easy to see and to grab

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedWidth(self.WIDTH)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._count = 1
        self._value = 0

    @property
    def value(self) -> int:
        """The slice shown."""
        return self._value

    def set_count(self, count: int) -> None:
        """Number of slices (at least 1)."""
        self._count = max(1, count)
        self._value = min(self._value, self._count - 1)
        self.update()

    def set_value(self, value: int) -> None:
        """Mark slice ``value`` (clamped); does not emit :attr:`value_changed`."""
        value = min(max(0, value), self._count - 1)
        if value != self._value:
            self._value = value
            self.update()

    def _handle_height(self) -> float:
        return max(float(self.MIN_HANDLE), self.height() / self._count)

    def paintEvent(self, _event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt override
        """Groove and handle."""
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), QtGui.QColor(GROOVE_COLOR))
        handle = self._handle_height()
        travel = self.height() - handle
        top = travel * self._value / max(1, self._count - 1)
        painter.fillRect(
            QtCore.QRectF(2, top, self.width() - 4, handle), QtGui.QColor(HANDLE_COLOR)
        )

    def _move_to(self, y: float) -> None:
        handle = self._handle_height()
        fraction = (y - handle / 2) / max(1.0, self.height() - handle)
        value = round(min(max(fraction, 0.0), 1.0) * (self._count - 1))
        if value != self._value:
            self.set_value(value)
            self.value_changed.emit(value)

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt override
        """Jump to the slice under the pointer."""
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self._move_to(event.position().y())

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt override
        """Follow a drag."""
        if event.buttons() & QtCore.Qt.MouseButton.LeftButton:
            self._move_to(event.position().y())
