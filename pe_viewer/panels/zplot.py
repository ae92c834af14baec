"""The z-plot: slice PE probability along the study, the current slice marked, click to jump."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from pe_viewer.state import ViewerState

PE_COLOR = "#ff6b5b"
NOT_ASSESSABLE_COLOR = "#9a9a9a"
"""Curve and dots on a series where slice findings mean nothing (no lung, no contrast)."""
SECOND_OPINION_COLORS = {
    "classification": "#5dade2",
    "triage": "#58d68d",
    "integrated": "#f5b041",
    "segmentation": "#c39bd3",
}
"""Thin dashed curves of the models whose slice scores are second opinions."""


class ZPlotWidget(pg.PlotWidget):
    """A strip of per-slice PE probability (x: slice index, y: probability).

    Slices not yet run are gaps. The dashed line is the slice threshold; the yellow line is the
    slice shown and can be dragged; a click anywhere jumps to that slice. Filled dots mark the
    slices the study counts as positive; hollow dots mark slices at or above the threshold that
    it does not count (a U-Net speck smaller than the bundle's ``min_clot_ml``). On a series
    without lung or arterial contrast the curve and dots are grey: model output, not findings.
    Thin dashed curves are the slice scores of other models, second opinions
    (:meth:`set_second_opinions`), named in a legend.
    """

    def __init__(self, state: ViewerState) -> None:
        super().__init__(background="#141517")
        self.state = state
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setMenuEnabled(False)
        self.setYRange(0, 1, padding=0.05)
        self.setLabel("bottom", "slice")
        self.setLabel("left", "P(PE)")
        self.getPlotItem().showGrid(x=False, y=True, alpha=0.2)
        self.curve = self.plot(pen=pg.mkPen(PE_COLOR, width=2), connect="finite")
        self.second_curves: dict[str, pg.PlotDataItem] = {}
        # One legend for the plot's life: pyqtgraph's addLegend returns the same one each call.
        self.legend = self.addLegend(offset=(-4, 4), labelTextSize="7pt", verSpacing=-6)
        self.legend.hide()
        self.counted = pg.ScatterPlotItem(size=6, pen=None, brush=pg.mkBrush(PE_COLOR))
        self.uncounted = pg.ScatterPlotItem(
            size=6, pen=pg.mkPen("#9a9a9a", width=1.2), brush=pg.mkBrush(None)
        )
        self.counted.setToolTip("positive slice: counts for the study")
        self.uncounted.setToolTip("above the threshold but not counted: too small a clot")
        self.threshold_line = pg.InfiniteLine(
            pos=state.threshold, angle=0, pen=pg.mkPen("#888888", style=QtCore.Qt.PenStyle.DashLine)
        )
        self.marker = pg.InfiniteLine(pos=0, angle=90, movable=True, pen=pg.mkPen("#ffd23f"))
        self.addItem(self.threshold_line)
        self.addItem(self.counted)
        self.addItem(self.uncounted)
        self.addItem(self.marker)
        self.setMinimumHeight(110)
        self.setMaximumHeight(220)
        self.marker.sigPositionChanged.connect(self._on_marker_dragged)
        self.scene().sigMouseClicked.connect(self._on_clicked)
        state.volume_changed.connect(self._on_volume_changed)
        state.results_added.connect(lambda _indices: self.redraw())
        state.study_changed.connect(lambda _study: self.redraw())
        state.assessed.connect(lambda _assessment: self.redraw())
        state.slice_changed.connect(self._on_slice_changed)

    def _on_volume_changed(self, volume: object) -> None:
        n = 1 if self.state.volume is None else self.state.volume.shape[0]
        self.setXRange(0, max(n - 1, 1), padding=0.01)
        self.redraw()
        self._on_slice_changed(self.state.z)

    def set_second_opinions(self, sources: Sequence[str], score_source: str | None) -> None:
        """Draw these models' slice scores beside ``score_source``'s (the thick curve)."""
        for curve in self.second_curves.values():
            self.removeItem(curve)
        self.legend.clear()
        if sources:
            self.legend.addItem(self.curve, f"{score_source} (slice score)")
        self.second_curves = {}
        for source in sources:  # a named curve joins the legend
            pen = pg.mkPen(
                SECOND_OPINION_COLORS.get(source, "#bbbbbb"),
                width=1,
                style=QtCore.Qt.PenStyle.DashLine,
            )
            self.second_curves[source] = self.plot(pen=pen, connect="finite", name=source)
        self.legend.setVisible(bool(sources))
        self.redraw()

    def redraw(self) -> None:
        """Plot the probabilities known so far and mark the positive slices."""
        values = self.state.pe_probabilities()
        color = PE_COLOR if self.state.findings_valid() else NOT_ASSESSABLE_COLOR
        self.curve.setPen(pg.mkPen(color, width=2))
        self.counted.setBrush(pg.mkBrush(color))
        self.threshold_line.setValue(self.state.threshold)
        _set_curve(self.curve, values)
        for source, curve in self.second_curves.items():
            _set_curve(curve, self.state.slice_scores(source))
        counted = np.array(sorted(r.index for r in self.state.positive_results()), dtype=int)
        above = np.flatnonzero(np.nan_to_num(values, nan=-1.0) >= self.state.threshold)
        uncounted = np.setdiff1d(above, counted)
        self.counted.setData(counted, values[counted])
        self.uncounted.setData(uncounted, values[uncounted])

    def _on_slice_changed(self, z: int) -> None:
        with QtCore.QSignalBlocker(self.marker):
            self.marker.setValue(z)

    def _on_marker_dragged(self) -> None:
        self.state.set_slice(round(self.marker.value()))

    def _on_clicked(self, event: object) -> None:
        position = self.getPlotItem().vb.mapSceneToView(event.scenePos())  # type: ignore[attr-defined]
        self.state.set_slice(round(position.x()))


def _set_curve(curve: pg.PlotDataItem, values: np.ndarray) -> None:
    """Plot (z,) values with NaN gaps; nothing while none is known."""
    if np.isfinite(values).any():
        curve.setData(np.arange(values.size), values)
    else:
        curve.setData([], [])
