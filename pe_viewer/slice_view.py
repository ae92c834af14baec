"""The axial slice view: one CT slice with explicit window levels, scrolling and a HU readout."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from pe_models.preprocess.windows import WindowPreset
from pe_models.volume import Volume

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

_AXIS_LETTERS = ("L", "R"), ("P", "A"), ("S", "I")  # LPS +axis letter, -axis letter


def edge_letters(direction: np.ndarray) -> dict[str, str]:
    """Patient direction at each image edge for a slice with these direction cosines.

    Parameters
    ----------
    direction
        3 × 3 direction cosines (columns: x index, y index, z index) in LPS.

    Returns
    -------
    dict
        Letters for ``"left"``, ``"right"``, ``"top"``, ``"bottom"`` of the displayed slice,
        e.g. R / L / A / P for a standard axial slice.
    """

    def towards(vector: np.ndarray) -> tuple[str, str]:
        axis = int(np.argmax(np.abs(vector)))
        positive, negative = _AXIS_LETTERS[axis]
        return (positive, negative) if vector[axis] > 0 else (negative, positive)

    right, left = towards(np.asarray(direction)[:, 0])
    bottom, top = towards(np.asarray(direction)[:, 1])
    return {"left": left, "right": right, "top": top, "bottom": bottom}


class SliceViewWidget(QtWidgets.QWidget):
    """Shows one slice of a :class:`Volume`; owns the slice index and the window levels.

    Mouse wheel, arrow keys, PageUp/PageDown and Home/End move through slices; right-drag
    changes window (horizontal) and level (vertical); left-drag pans and Ctrl+wheel zooms.

    Signals
    -------
    slice_changed(int)
        The z index shown.
    levels_changed(float, float)
        The window as (low, high) HU.
    cursor_readout(str)
        "x, y, z (mm) HU" under the mouse, or "" outside the image.
    """

    slice_changed = QtCore.Signal(int)
    levels_changed = QtCore.Signal(float, float)
    cursor_readout = QtCore.Signal(str)

    PAGE_STEP = 10

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._volume: Volume | None = None
        self._z = 0
        self._levels = (-250.0, 450.0)
        self._drag_origin: QtCore.QPointF | None = None
        self._drag_levels = self._levels

        self._graphics = pg.GraphicsLayoutWidget()
        self._graphics.setBackground("k")
        self._view = self._graphics.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self._view.setMouseEnabled(x=True, y=True)
        self._image = pg.ImageItem(axisOrder="row-major")
        self._image.setZValue(0)
        self._view.addItem(self._image)
        self._letters = {
            edge: pg.TextItem(color="#e0c060") for edge in ("left", "right", "top", "bottom")
        }
        self._info = pg.TextItem(color="#d0d0d0", anchor=(0, 0))
        for item in (*self._letters.values(), self._info):
            item.setParentItem(self._view)  # stays put while the image pans and zooms

        self._slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Vertical)
        self._slider.setInvertedAppearance(True)  # superior at the top
        self._slider.valueChanged.connect(self.set_slice)

        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._graphics, stretch=1)
        layout.addWidget(self._slider)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self._graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._graphics.viewport().installEventFilter(self)

    # -- state ---------------------------------------------------------------------------
    @property
    def volume(self) -> Volume | None:
        """The volume shown, or None."""
        return self._volume

    @property
    def slice_index(self) -> int:
        """The z index shown."""
        return self._z

    @property
    def levels(self) -> tuple[float, float]:
        """The display window (low, high) in HU."""
        return self._levels

    def set_volume(self, volume: Volume, *, z: int | None = None) -> None:
        """Show ``volume``, at slice ``z`` (default: the middle one)."""
        self._volume = volume
        with QtCore.QSignalBlocker(self._slider):
            self._slider.setRange(0, volume.shape[0] - 1)
        # Non-square pixels: stretch rows so the image shows true proportions.
        self._image.setTransform(
            QtGui.QTransform.fromScale(1.0, volume.spacing[1] / volume.spacing[2])
        )
        letters = edge_letters(volume.direction)
        for edge, item in self._letters.items():
            item.setText(letters[edge])
        self._z = -1
        self.set_slice(volume.shape[0] // 2 if z is None else z)
        self._view.autoRange(padding=0)
        self._place_letters()

    def show_preview(self, hu_slice: np.ndarray) -> None:
        """Show a single decoded slice while the rest of the series is still loading."""
        self._image.setImage(hu_slice, levels=self._levels, autoLevels=False)
        self._view.autoRange(padding=0)

    def set_slice(self, z: int) -> None:
        """Show slice ``z`` (clamped to the volume)."""
        if self._volume is None:
            return
        z = int(np.clip(z, 0, self._volume.shape[0] - 1))
        if z == self._z:
            return
        self._z = z
        self._image.setImage(self._volume.hu[z], levels=self._levels, autoLevels=False)
        with QtCore.QSignalBlocker(self._slider):
            self._slider.setValue(z)
        self._update_info()
        self.slice_changed.emit(z)

    def set_window(self, window: WindowPreset | tuple[float, float]) -> None:
        """Set the display window from a preset or explicit (low, high) HU."""
        low, high = (window.low, window.high) if isinstance(window, WindowPreset) else window
        self._levels = (float(low), float(max(high, low + 1)))
        self._image.setLevels(self._levels)
        self._update_info()
        self.levels_changed.emit(*self._levels)

    # -- drawing -------------------------------------------------------------------------
    def _update_info(self) -> None:
        if self._volume is None:
            return
        low, high = self._levels
        z_mm = self._volume.slice_positions_mm()[self._z]
        self._info.setText(
            f"{self._volume.meta.description}\n"
            f"slice {self._z + 1}/{self._volume.shape[0]}  z {z_mm:.2f} mm\n"
            f"W {high - low:.0f}  L {(high + low) / 2:.0f}"
        )

    def _place_letters(self) -> None:
        rect = self._view.boundingRect()
        self._letters["left"].setPos(4, rect.height() / 2)
        self._letters["right"].setPos(rect.width() - 16, rect.height() / 2)
        self._letters["top"].setPos(rect.width() / 2, 4)
        self._letters["bottom"].setPos(rect.width() / 2, rect.height() - 24)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt override
        """Keep the orientation letters at the edges."""
        super().resizeEvent(event)
        self._place_letters()

    # -- input ---------------------------------------------------------------------------
    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 - Qt override
        """Arrow keys, PageUp/PageDown and Home/End move through slices."""
        if self._volume is None:
            super().keyPressEvent(event)
            return
        key = QtCore.Qt.Key
        steps = {
            key.Key_Up: 1,
            key.Key_Right: 1,
            key.Key_Down: -1,
            key.Key_Left: -1,
            key.Key_PageUp: self.PAGE_STEP,
            key.Key_PageDown: -self.PAGE_STEP,
        }
        pressed = key(event.key())
        if pressed in steps:
            self.set_slice(self._z + steps[pressed])
        elif pressed == key.Key_Home:
            self.set_slice(0)
        elif pressed == key.Key_End:
            self.set_slice(self._volume.shape[0] - 1)
        else:
            super().keyPressEvent(event)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802
        """Wheel scrolls slices (Ctrl+wheel zooms); right-drag sets window and level."""
        if self._volume is None:
            return super().eventFilter(watched, event)
        control = QtCore.Qt.KeyboardModifier.ControlModifier
        right = QtCore.Qt.MouseButton.RightButton
        if isinstance(event, QtGui.QWheelEvent) and not event.modifiers() & control:
            self.set_slice(self._z + (1 if event.angleDelta().y() > 0 else -1))
            return True
        if isinstance(event, QtGui.QMouseEvent):
            kind = event.type()
            if kind == QtCore.QEvent.Type.MouseButtonPress and event.button() == right:
                self._drag_origin = event.position()
                self._drag_levels = self._levels
                return True
            if kind == QtCore.QEvent.Type.MouseMove and self._drag_origin is not None:
                delta = event.position() - self._drag_origin
                low, high = self._drag_levels
                width = max(1.0, (high - low) + 4.0 * delta.x())
                level = (high + low) / 2 - 4.0 * delta.y()
                self.set_window((level - width / 2, level + width / 2))
                return True
            if kind == QtCore.QEvent.Type.MouseButtonRelease and self._drag_origin is not None:
                self._drag_origin = None
                return True
        return super().eventFilter(watched, event)

    def _on_mouse_moved(self, scene_position: QtCore.QPointF) -> None:
        if self._volume is None:
            return
        point = self._image.mapFromScene(scene_position)
        x, y = int(np.floor(point.x())), int(np.floor(point.y()))
        _, rows, columns = self._volume.shape
        if not (0 <= x < columns and 0 <= y < rows):
            self.cursor_readout.emit("")
            return
        lps = self._volume.index_to_lps(self._z, y, x)
        hu = int(self._volume.hu[self._z, y, x])
        self.cursor_readout.emit(
            f"x {x} y {y}  ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm  {hu} HU"
        )
