"""The axial slice view: one CT slice with explicit window levels, overlays and a HU readout."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from pe_models.preprocess.windows import WindowPreset
from pe_models.volume import Volume
from pe_viewer.overlays import Patch, SliceOverlays, heatmap_patch, mask_patch, triage_text
from pe_viewer.pixmaps import TextItem
from pe_viewer.slice_bar import SliceBar
from pe_viewer.state import HeatmapKey, ViewerState

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

_AXIS_LETTERS = ("L", "R"), ("P", "A"), ("S", "I")  # LPS +axis letter, -axis letter
_LETTER_ANCHORS = {"left": (0, 0.5), "right": (1, 0.5), "top": (0.5, 0), "bottom": (0.5, 1)}
LETTER_COLOR = "#e0c060"
INFO_COLOR = "#d0d0d0"


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
    """Shows the slice of the :class:`ViewerState` with its model overlays.

    Mouse wheel, arrow keys, PageUp/PageDown and Home/End move through slices; right-drag
    changes window (horizontal) and level (vertical); left-drag pans and Ctrl+wheel zooms.

    Parameters
    ----------
    state
        The viewer state this widget shows and changes.

    Signals
    -------
    cursor_readout(str)
        "x, y, z (mm) HU" under the mouse, or "" outside the image.
    """

    cursor_readout = QtCore.Signal(str)

    PAGE_STEP = 10

    def __init__(self, state: ViewerState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.score_source: str | None = None  # which model scores slices (badge text)
        self._mask_patches: dict[int, Patch | None] = {}
        self._heatmap_patches: dict[HeatmapKey, Patch | None] = {}
        self._drag_origin: QtCore.QPointF | None = None
        self._drag_levels = state.levels

        self._graphics = pg.GraphicsLayoutWidget()
        self._graphics.setBackground("k")
        self._view = self._graphics.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self._view.setMouseEnabled(x=True, y=True)
        self._image = pg.ImageItem(axisOrder="row-major")
        self._image.setZValue(0)
        self._view.addItem(self._image)
        self.overlays = SliceOverlays(self._image, self._view)
        # Children of the view box, not of the image: they stay put while it pans and zooms.
        self._letters = {
            edge: TextItem(self._view, anchor) for edge, anchor in _LETTER_ANCHORS.items()
        }
        self._info = TextItem(self._view)
        self._info.setPos(4, 4)

        self._slice_bar = SliceBar()
        self._slice_bar.setToolTip("Slice (wheel, arrows, PageUp/PageDown, Home/End)")
        self._slice_bar.value_changed.connect(state.set_slice)

        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._graphics, stretch=1)
        layout.addWidget(self._slice_bar)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self._graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._graphics.viewport().installEventFilter(self)

        state.volume_changed.connect(self._on_volume_changed)
        state.slice_changed.connect(self._on_slice_changed)
        state.levels_changed.connect(self._on_levels_changed)
        state.results_added.connect(self._on_results_added)
        state.heatmap_added.connect(self._on_heatmap_added)
        state.layer_changed.connect(lambda _layer: self.draw_overlays())

    # -- state ---------------------------------------------------------------------------
    @property
    def volume(self) -> Volume | None:
        """The volume shown, or None."""
        return self.state.volume

    @property
    def slice_index(self) -> int:
        """The z index shown."""
        return self.state.z

    @property
    def levels(self) -> tuple[float, float]:
        """The display window (low, high) in HU."""
        return self.state.levels

    def set_slice(self, z: int) -> None:
        """Show slice ``z`` (clamped to the volume)."""
        self.state.set_slice(z)

    def set_window(self, window: WindowPreset | tuple[float, float]) -> None:
        """Set the display window from a preset or explicit (low, high) HU."""
        low, high = (window.low, window.high) if isinstance(window, WindowPreset) else window
        self.state.set_levels(low, high)

    def show_preview(self, hu_slice: np.ndarray) -> None:
        """Show a single decoded slice while the rest of the series is still loading."""
        self.overlays.clear()
        self._image.resetTransform()
        self._image.setImage(hu_slice, levels=self.state.levels, autoLevels=False)
        self._view.autoRange(padding=0)

    def _on_volume_changed(self, volume: Volume | None) -> None:
        self.overlays.clear()
        self._mask_patches = {}
        self._heatmap_patches = {}
        if volume is None:
            self._image.clear()
            return
        self._slice_bar.set_count(volume.shape[0])
        # Non-square pixels: stretch rows so the image shows true proportions.
        self._image.setTransform(
            QtGui.QTransform.fromScale(1.0, volume.spacing[1] / volume.spacing[2])
        )
        letters = edge_letters(volume.direction)
        for edge, item in self._letters.items():
            item.set_text(letters[edge], LETTER_COLOR)
        self._draw_slice()
        self._view.autoRange(padding=0)
        self._place_letters()

    def _on_slice_changed(self, _z: int) -> None:
        self._draw_slice()

    def _draw_slice(self) -> None:
        volume = self.state.volume
        if volume is None:
            return
        z = self.state.z
        self._image.setImage(volume.hu[z], levels=self.state.levels, autoLevels=False)
        self._slice_bar.set_value(z)
        self._update_info()
        self.draw_overlays()

    def _on_levels_changed(self, low: float, high: float) -> None:
        self._image.setLevels((low, high))
        self._update_info()

    def _on_results_added(self, indices: tuple[int, ...]) -> None:
        for z in indices:  # colour them now, not while the reader scrolls
            self._mask_patches[z] = mask_patch(self.state.results[z].mask)
        if self.state.z in indices:
            self.draw_overlays()

    def _on_heatmap_added(self, key: HeatmapKey) -> None:
        self._heatmap_patches[key] = heatmap_patch(
            self.state.heatmaps[key], self.overlays.heatmap_lut
        )
        if key == self.state.heatmap_key():
            self.draw_overlays()

    def draw_overlays(self) -> None:
        """Draw the current slice's model results as the layer styles say."""
        state = self.state
        result = state.results.get(state.z)
        style = state.shown_style
        key = state.heatmap_key()
        self.overlays.show_mask(self._mask_patches.get(state.z), style("mask"))
        self.overlays.show_boxes(
            None if result is None else state.shown_boxes(result), style("boxes")
        )
        self.overlays.show_heatmap(
            None if key is None else self._heatmap_patches.get(key), style("heatmap")
        )
        self.overlays.show_crop(
            None if result is None else result.crop, style("model_view").visible
        )
        badge = triage_text(result, self.score_source, self.state.threshold)
        info = self._info.mapRectToParent(self._info.boundingRect())
        self.overlays.show_badge(badge, style("triage"), clear_of=info)

    # -- drawing -------------------------------------------------------------------------
    def _update_info(self) -> None:
        volume = self.state.volume
        if volume is None:
            return
        low, high = self.state.levels
        z = self.state.z
        z_mm = volume.slice_positions_mm()[z]
        self._info.set_text(
            f"{volume.meta.description}\n"
            f"slice {z + 1}/{volume.shape[0]}  z {z_mm:.2f} mm\n"
            f"W {high - low:.0f}  L {(high + low) / 2:.0f}",
            INFO_COLOR,
        )

    def _place_letters(self) -> None:
        rect = self._view.boundingRect()
        self._letters["left"].setPos(4, rect.height() / 2)
        self._letters["right"].setPos(rect.width() - 4, rect.height() / 2)
        self._letters["top"].setPos(rect.width() / 2, 4)
        self._letters["bottom"].setPos(rect.width() / 2, rect.height() - 4)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt override
        """Keep the orientation letters and the badge at the edges."""
        super().resizeEvent(event)
        self._place_letters()
        self.draw_overlays()

    # -- input ---------------------------------------------------------------------------
    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 - Qt override
        """Arrow keys, PageUp/PageDown and Home/End move through slices."""
        volume = self.state.volume
        if volume is None:
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
            self.set_slice(self.state.z + steps[pressed])
        elif pressed == key.Key_Home:
            self.set_slice(0)
        elif pressed == key.Key_End:
            self.set_slice(volume.shape[0] - 1)
        else:
            super().keyPressEvent(event)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802
        """Wheel scrolls slices (Ctrl+wheel zooms); right-drag sets window and level."""
        if self.state.volume is None:
            return super().eventFilter(watched, event)
        control = QtCore.Qt.KeyboardModifier.ControlModifier
        right = QtCore.Qt.MouseButton.RightButton
        if isinstance(event, QtGui.QWheelEvent) and not event.modifiers() & control:
            self.set_slice(self.state.z + (1 if event.angleDelta().y() > 0 else -1))
            return True
        if isinstance(event, QtGui.QMouseEvent):
            kind = event.type()
            if kind == QtCore.QEvent.Type.MouseButtonPress and event.button() == right:
                self._drag_origin = event.position()
                self._drag_levels = self.state.levels
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
        volume = self.state.volume
        if volume is None:
            return
        point = self._image.mapFromScene(scene_position)
        x, y = int(np.floor(point.x())), int(np.floor(point.y()))
        _, rows, columns = volume.shape
        if not (0 <= x < columns and 0 <= y < rows):
            self.cursor_readout.emit("")
            return
        z = self.state.z
        lps = volume.index_to_lps(z, y, x)
        hu = int(volume.hu[z, y, x])
        self.cursor_readout.emit(
            f"x {x} y {y}  ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm  {hu} HU"
        )
