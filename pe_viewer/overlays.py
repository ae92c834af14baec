"""Overlay items drawn over the CT slice: PE mask, boxes, Grad-CAM, the model's crop, a badge.

Items that live in image pixels are children of the slice's ``ImageItem`` and so share its
transform (non-square pixels, pan, zoom). Masks and heatmaps are turned into pixmaps of their
bounding box once, when they arrive, so a slice change only swaps pixmaps: a clot covers a few
hundred pixels of 262 144, and colour-mapping a whole slice per scroll step would cost more
than drawing the CT itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from pe_models.inference import SliceResult
from pe_models.preprocess.lung_crop import CropBox
from pe_viewer.pixmaps import TextItem, to_pixmap
from pe_viewer.state import LayerStyle

MASK_RGBA = (255, 48, 48, 255)
BOX_COLOR = "#ffd23f"
CROP_COLOR = "#3fc1ff"
TRIAGE_COLORS = {"normal": "#3c9a5f", "other_disease": "#c98a1b", "pe": "#c0392b"}
VISIBLE_ALPHA = 8  # of 255: fainter heatmap pixels are not drawn
TRIAGE_NAMES = {"normal": "Normal", "other_disease": "Other disease", "pe": "PE"}
BELOW_THRESHOLD_COLOR = "#55585e"
"""Badge of a slice PE score under the threshold: neutral grey, neither alarm red nor the
"normal" green a triage model would have to earn."""


def heatmap_lut(name: str = "inferno") -> np.ndarray:
    """(256, 4) uint8 colour map whose alpha rises with the value (weak evidence fades out)."""
    lut = pg.colormap.get(name).getLookupTable(0.0, 1.0, 256, alpha=True)
    lut[:, 3] = np.clip(np.linspace(0, 2, 256), 0, 1) * 255
    return lut


def bounding_patch(image: np.ndarray) -> tuple[int, int, np.ndarray] | None:
    """The smallest patch holding every non-zero pixel of a (y, x) image.

    Returns
    -------
    tuple or None
        (y0, x0, patch), or None when the image is all zero.
    """
    rows = np.flatnonzero(image.any(axis=1))
    if rows.size == 0:
        return None
    columns = np.flatnonzero(image.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    return int(y0), int(x0), image[y0:y1, x0:x1]


@dataclass(frozen=True)
class Patch:
    """A colour overlay ready to draw: its pixmap and where its top-left pixel goes (y, x)."""

    y0: int
    x0: int
    pixmap: QtGui.QPixmap


def mask_patch(mask: np.ndarray | None) -> Patch | None:
    """The red pixmap of a (y, x) 0/1 mask's bounding box, or None when it is empty."""
    found = None if mask is None else bounding_patch(mask)
    if found is None:
        return None
    y0, x0, values = found
    rgba = np.zeros((*values.shape, 4), np.uint8)
    rgba[values.astype(bool)] = MASK_RGBA
    return Patch(y0, x0, to_pixmap(rgba))


def heatmap_patch(heatmap: np.ndarray | None, lut: np.ndarray) -> Patch | None:
    """The colour-mapped pixmap of a (y, x) heatmap in [0, 1], cut to its visible box.

    Pixels fainter than :data:`VISIBLE_ALPHA` are left out: blending the heatmap is the
    costliest overlay per slice change, and a Grad-CAM's faint tail can double its box.
    """
    if heatmap is None:
        return None
    index = np.clip(heatmap * (len(lut) - 1), 0, len(lut) - 1).astype(np.intp)
    rgba = lut[index]
    found = bounding_patch(rgba[..., 3] >= VISIBLE_ALPHA)
    if found is None:
        return None
    y0, x0, visible = found
    patch = rgba[y0 : y0 + visible.shape[0], x0 : x0 + visible.shape[1]]
    patch[~visible] = 0
    return Patch(y0, x0, to_pixmap(patch))


def triage_text(
    result: SliceResult | None, score_source: str | None, threshold: float
) -> tuple[str, str] | None:
    """Badge text and colour for a slice: its PE score, then the other models' second opinions.

    The slice PE probability (of ``score_source``) is red at or above ``threshold`` and grey
    below it; where triage gives it (or nothing does), the triage class leads in its colour.
    Other slice PE scores follow after " · ", triage's as its class. The triage class is the
    pipeline's, at the bundles' cuts, with the triage P(PE) beside it: the probability of the
    class itself can be the lower one (stage 1's cut sits far above 0.5).
    """
    if result is None:
        return None
    if result.triage_class is not None and (
        score_source == "triage" or result.pe_probability is None
    ):
        text = _triage_class_text(result.triage_class, result.triage)
        color = TRIAGE_COLORS[result.triage_class]
    elif result.pe_probability is not None:
        source = f" ({score_source})" if score_source else ""
        positive = result.pe_probability >= threshold
        color = TRIAGE_COLORS["pe"] if positive else BELOW_THRESHOLD_COLOR
        text = f"PE {result.pe_probability:.0%}{source}"
    else:
        return None
    seconds = [
        f"triage {_triage_class_text(result.triage_class, result.triage)}"
        if name == "triage" and result.triage_class is not None
        else f"{name} {score:.0%}"
        for name, score in result.model_scores.items()
        if name != score_source
    ]
    return " · ".join([text, *seconds]), color


def _triage_class_text(label: str, probabilities: dict[str, float] | None) -> str:
    pe = "" if probabilities is None else f" (P(PE) {probabilities['pe']:.0%})"
    return f"{TRIAGE_NAMES[label]}{pe}"


class SliceOverlays:
    """The overlay items of one slice view.

    Parameters
    ----------
    image
        The CT slice's item; pixel-space overlays become its children.
    view
        The view box; the badge stays in its corner.
    """

    def __init__(self, image: pg.ImageItem, view: pg.ViewBox) -> None:
        self.heatmap_lut = heatmap_lut()
        self.heatmap = QtWidgets.QGraphicsPixmapItem(image)
        self.mask = QtWidgets.QGraphicsPixmapItem(image)
        for z, item in enumerate((self.heatmap, self.mask), start=1):
            item.setZValue(z)
        box_pen = QtGui.QPen(QtGui.QColor(BOX_COLOR), 2)
        box_pen.setCosmetic(True)  # 2 screen pixels at any zoom
        self.boxes = QtWidgets.QGraphicsPathItem(image)
        self.boxes.setPen(box_pen)
        self.boxes.setZValue(3)
        self._labels: list[TextItem] = []
        self._image = image
        crop_pen = QtGui.QPen(QtGui.QColor(CROP_COLOR), 1, QtCore.Qt.PenStyle.DashLine)
        crop_pen.setCosmetic(True)
        self.crop = QtWidgets.QGraphicsRectItem(image)
        self.crop.setPen(crop_pen)
        self.crop.setZValue(4)
        self.badge = TextItem(view, anchor=(1, 0))
        self._view = view
        self.clear()

    def clear(self) -> None:
        """Hide every overlay."""
        for item in (self.heatmap, self.mask, self.boxes, self.crop, self.badge, *self._labels):
            item.hide()

    @staticmethod
    def _show_patch(
        item: QtWidgets.QGraphicsPixmapItem, patch: Patch | None, style: LayerStyle
    ) -> None:
        if not style.visible or patch is None:
            item.hide()
            return
        item.setPixmap(patch.pixmap)
        item.setPos(patch.x0, patch.y0)
        item.setOpacity(style.opacity)
        item.show()

    def show_mask(self, patch: Patch | None, style: LayerStyle) -> None:
        """Draw a mask patch (see :func:`mask_patch`)."""
        self._show_patch(self.mask, patch, style)

    def show_heatmap(self, patch: Patch | None, style: LayerStyle) -> None:
        """Draw a heatmap patch (see :func:`heatmap_patch`)."""
        self._show_patch(self.heatmap, patch, style)

    def show_boxes(self, boxes: np.ndarray | None, style: LayerStyle) -> None:
        """Draw (N, 5) boxes (x0, y0, x1, y1, score) in image pixels with their scores."""
        if not style.visible or boxes is None or len(boxes) == 0:
            self.boxes.hide()
            for label in self._labels:
                label.hide()
            return
        path = QtGui.QPainterPath()
        for x0, y0, x1, y1, _ in boxes:
            path.addRect(QtCore.QRectF(x0, y0, x1 - x0, y1 - y0))
        self.boxes.setPath(path)
        self.boxes.setOpacity(style.opacity)
        self.boxes.show()
        while len(self._labels) < len(boxes):
            label = TextItem(self._image, anchor=(0, 1))
            label.setZValue(3)
            self._labels.append(label)
        for i, label in enumerate(self._labels):
            if i < len(boxes):
                x0, y0, _, _, score = boxes[i]
                label.set_text(f"{score:.2f}", BOX_COLOR)
                label.setPos(x0, y0)
                label.show()
            else:
                label.hide()

    def show_crop(self, crop: CropBox | None, visible: bool) -> None:
        """Outline the crop the models saw."""
        if not visible or crop is None:
            self.crop.hide()
            return
        self.crop.setRect(QtCore.QRectF(crop.x0, crop.y0, crop.x1 - crop.x0, crop.y1 - crop.y0))
        self.crop.show()

    def show_badge(
        self,
        text: tuple[str, str] | None,
        style: LayerStyle,
        clear_of: QtCore.QRectF | None = None,
    ) -> None:
        """Show the slice's triage (or PE probability) in the top-right corner.

        ``clear_of``: a rectangle of the view (the study text in the top-left corner) that
        the badge must not cover; where a narrow view would make it, the badge moves below.
        """
        if not style.visible or text is None:
            self.badge.hide()
            return
        label, color = text
        self.badge.set_text(label, "white", background=color)
        self.badge.setOpacity(style.opacity)
        self.badge.setPos(self._view.boundingRect().width() - 6, 6)
        placed = self.badge.mapRectToParent(self.badge.boundingRect())
        if clear_of is not None and placed.intersects(clear_of):
            self.badge.setPos(self.badge.pos().x(), clear_of.bottom() + 6)
        self.badge.show()
