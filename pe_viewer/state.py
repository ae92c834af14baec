"""The viewer's state: the study, the slice shown, the window, model results and layer styles.

Widgets change the state through its setters and redraw on its signals, so every view of the
same fact (slider, z-plot marker, findings list) stays in step without knowing of the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np
from PySide6 import QtCore

from pe_models.inference import DEFAULT_BOX_SCORE_CUT, SliceResult, StudyResult
from pe_models.study_checks import Assessability
from pe_models.volume import Volume

LAYERS: dict[str, str] = {
    "mask": "PE mask (U-Net)",
    "boxes": "Boxes (Faster R-CNN)",
    "triage": "Triage badge",
    "heatmap": "Grad-CAM heatmap",
    "model_view": "What the model saw",
}
"""Overlay layers, by key, with the label the layer panel shows."""


@dataclass(frozen=True)
class LayerStyle:
    """How one overlay layer is drawn."""

    visible: bool
    opacity: float


DEFAULT_STYLES: dict[str, LayerStyle] = {
    "mask": LayerStyle(True, 0.5),
    "boxes": LayerStyle(True, 1.0),
    "triage": LayerStyle(True, 1.0),
    "heatmap": LayerStyle(False, 0.45),  # on demand: Grad-CAM costs a backward pass
    "model_view": LayerStyle(False, 1.0),
}

WITHHELD_LAYERS = ("mask", "boxes", "triage")
"""Layers hidden by default on a series whose slice findings mean nothing (no lung or no
arterial contrast: see ``Assessability.slice_findings_valid``); ticking one shows it again."""


@dataclass(frozen=True)
class HeatmapKey:
    """Which Grad-CAM: the slice, the model (task) explained and the CAM method."""

    z: int
    target: str
    method: str


class ViewerState(QtCore.QObject):
    """Evented state of one viewer window.

    Signals
    -------
    volume_changed(object)
        A new :class:`Volume` is shown; every result of the previous one is gone.
    slice_changed(int)
        The z index shown.
    levels_changed(float, float)
        The display window (low, high) in HU.
    results_added(object)
        Tuple of z indices whose :class:`SliceResult` just arrived.
    study_changed(object)
        The :class:`StudyResult`, or None when results were cleared.
    assessed(object)
        The study's :class:`Assessability`, or None when not (yet) known.
    heatmap_added(object)
        The :class:`HeatmapKey` of a Grad-CAM that just arrived.
    layer_changed(str)
        A layer's style, the Grad-CAM target or method, or the box score cut changed.
    """

    volume_changed = QtCore.Signal(object)
    slice_changed = QtCore.Signal(int)
    levels_changed = QtCore.Signal(float, float)
    results_added = QtCore.Signal(object)
    study_changed = QtCore.Signal(object)
    assessed = QtCore.Signal(object)
    heatmap_added = QtCore.Signal(object)
    layer_changed = QtCore.Signal(str)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.volume: Volume | None = None
        self.z = 0
        self.levels = (-250.0, 450.0)
        self.results: dict[int, SliceResult] = {}
        self.study: StudyResult | None = None
        self.assessment: Assessability | None = None
        self.heatmaps: dict[HeatmapKey, np.ndarray] = {}
        self.styles: dict[str, LayerStyle] = dict(DEFAULT_STYLES)
        """The user's layer styles (saved between sessions); :meth:`shown_style` draws them."""
        self.withheld: set[str] = set()
        """Layers hidden on this study whatever their style (see :data:`WITHHELD_LAYERS`)."""
        self.cam_target: str | None = None
        self.cam_method = "gradcam"
        self.threshold = 0.5
        self.min_box_score = DEFAULT_BOX_SCORE_CUT  # until the user or the detector sets one
        self.min_box_score_chosen = False
        """Whether the user set the cut (then a bundle's own cut does not replace it)."""

    # -- study and slice ---------------------------------------------------------------
    def set_volume(self, volume: Volume | None, *, z: int | None = None) -> None:
        """Show ``volume`` at slice ``z`` (default: the middle); drops every result."""
        self.volume = volume
        self.results = {}
        self.study = None
        self.heatmaps = {}
        self.set_assessment(None)
        self.z = 0 if volume is None else self._clamp(volume.shape[0] // 2 if z is None else z)
        self.volume_changed.emit(volume)
        self.study_changed.emit(None)
        self.slice_changed.emit(self.z)

    def set_slice(self, z: int) -> None:
        """Show slice ``z``, clamped to the volume."""
        if self.volume is None:
            return
        z = self._clamp(z)
        if z != self.z:
            self.z = z
            self.slice_changed.emit(z)

    def _clamp(self, z: int) -> int:
        assert self.volume is not None
        return int(np.clip(z, 0, self.volume.shape[0] - 1))

    def set_levels(self, low: float, high: float) -> None:
        """Set the display window in HU (at least 1 HU wide)."""
        levels = (float(low), float(max(high, low + 1)))
        if levels != self.levels:
            self.levels = levels
            self.levels_changed.emit(*levels)

    # -- model results -----------------------------------------------------------------
    def add_results(self, results: Iterable[SliceResult]) -> None:
        """Store slice results of the volume shown."""
        added = []
        for result in results:
            self.results[result.index] = result
            added.append(result.index)
        if added:
            self.results_added.emit(tuple(added))

    def set_study(self, study: StudyResult | None) -> None:
        """Store the study result (its slice results too)."""
        self.study = study
        if study is not None:
            self.add_results(study.slices)
        self.study_changed.emit(study)

    def set_assessment(self, assessment: Assessability | None) -> None:
        """Store whether PE can be assessed on the study shown (None: not known).

        Where its slice findings mean nothing (no lung, no arterial contrast), the
        :data:`WITHHELD_LAYERS` are hidden until the user ticks them again.
        """
        self.assessment = assessment
        withheld = set() if self.findings_valid() else set(WITHHELD_LAYERS)
        changed, self.withheld = withheld ^ self.withheld, withheld
        self.assessed.emit(assessment)
        for layer in sorted(changed):
            self.layer_changed.emit(layer)

    def findings_valid(self) -> bool:
        """Whether the slice findings mean anything on the study shown (True until checked)."""
        return self.assessment is None or self.assessment.slice_findings_valid

    def add_heatmap(self, key: HeatmapKey, heatmap: np.ndarray) -> None:
        """Store a (y, x) Grad-CAM heatmap in [0, 1]."""
        self.heatmaps[key] = heatmap
        self.heatmap_added.emit(key)

    def heatmap_key(self, z: int | None = None) -> HeatmapKey | None:
        """The Grad-CAM wanted for slice ``z`` (default: the one shown), or None."""
        if self.cam_target is None:
            return None
        return HeatmapKey(self.z if z is None else z, self.cam_target, self.cam_method)

    def positive_results(self) -> list[SliceResult]:
        """Positive slices, highest probability first, then by z.

        Probabilities are compared as the findings list shows them (2 decimals), so a run of
        slices all at "1.00" reads along z, not in an order set by digits nobody sees.

        Once the study result is in, those it counts (a U-Net alone counts only slices of
        clots of the minimum size); before, every slice at or above the threshold.
        """
        if self.study is not None:
            positive = [self.results[z] for z in self.study.positive_slices if z in self.results]
        else:
            positive = [
                r
                for r in self.results.values()
                if r.pe_probability is not None and r.pe_probability >= self.threshold
            ]
        return sorted(positive, key=lambda r: (-round(r.pe_probability or 0.0, 2), r.index))

    def pe_probabilities(self) -> np.ndarray:
        """(z,) slice PE probability, NaN where not (yet) known."""
        return self._per_slice(lambda result: result.pe_probability)

    def slice_scores(self, source: str) -> np.ndarray:
        """(z,) slice PE score of one model (``SliceResult.model_scores``), NaN where unknown."""
        return self._per_slice(lambda result: result.model_scores.get(source))

    def _per_slice(self, value_of: Callable[[SliceResult], float | None]) -> np.ndarray:
        n = 0 if self.volume is None else self.volume.shape[0]
        values = np.full(n, np.nan)
        for z, result in self.results.items():
            if (value := value_of(result)) is not None:
                values[z] = value
        return values

    # -- layers ------------------------------------------------------------------------
    def set_style(
        self, layer: str, *, visible: bool | None = None, opacity: float | None = None
    ) -> None:
        """Show or hide a layer, or change its opacity (0-1); showing one ends its withholding."""
        style = self.styles[layer]
        new = replace(
            style,
            visible=style.visible if visible is None else bool(visible),
            opacity=style.opacity if opacity is None else float(np.clip(opacity, 0, 1)),
        )
        shown_again = bool(visible) and layer in self.withheld
        if shown_again:
            self.withheld.discard(layer)
        if new != style or shown_again:
            self.styles[layer] = new
            self.layer_changed.emit(layer)

    def shown_style(self, layer: str) -> LayerStyle:
        """How ``layer`` is drawn now: its style, hidden while it is withheld."""
        style = self.styles[layer]
        return replace(style, visible=False) if layer in self.withheld else style

    def set_min_box_score(self, score: float, *, chosen: bool = False) -> None:
        """Draw and count only boxes scoring at least ``score`` (clipped to 0-1).

        ``chosen``: the user set it (in the layer panel, or saved from an earlier session); a
        detector bundle's cut (:meth:`offer_min_box_score`) no longer replaces it.
        """
        if not np.isfinite(score):
            raise ValueError(f"box score cut must be a number, got {score}")
        self.min_box_score_chosen |= chosen
        score = float(np.clip(score, 0, 1))
        if score != self.min_box_score:
            self.min_box_score = score
            self.layer_changed.emit("boxes")

    def offer_min_box_score(self, score: float) -> None:
        """Take a detector bundle's box score cut, unless the user has chosen one."""
        if not self.min_box_score_chosen:
            self.set_min_box_score(score)

    def shown_boxes(self, result: SliceResult) -> np.ndarray:
        """(N, 5) boxes of ``result`` at or above the box score cut."""
        return result.boxes_scoring(self.min_box_score)

    def set_cam(self, *, target: str | None = None, method: str | None = None) -> None:
        """Choose which model Grad-CAM explains and with which method."""
        changed = False
        if target is not None and target != self.cam_target:
            self.cam_target, changed = target, True
        if method is not None and method != self.cam_method:
            self.cam_method, changed = method, True
        if changed:
            self.layer_changed.emit("heatmap")
