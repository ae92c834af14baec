"""The findings panel: the study answer, positive slices (click to jump), warnings, cards."""

from __future__ import annotations

import re

import numpy as np
from PySide6 import QtCore, QtWidgets

from pe_models.inference import StudyResult
from pe_viewer.overlays import TRIAGE_COLORS, TRIAGE_NAMES
from pe_viewer.state import LAYERS, WITHHELD_LAYERS, ViewerState
from pe_viewer.worker import ModelsInfo

NOT_ASSESSABLE_COLOR = "#5a5d63"
POSITIVE_SLICES = "Positive slices"
FLAGGED_NOT_ASSESSABLE = "Slices over the threshold (not findings: PE is not assessable here)"

SCORE_SOURCES = {
    "classification": "slice classifier",
    "triage": "triage stage 1 × stage 2",
    "integrated": "integrated model's classifier head",
    "segmentation": "U-Net's highest pixel probability",
}

SECOND_OPINION_COLUMNS = {
    "classification": "Classifier",
    "triage": "Triage P(PE)",
    "integrated": "Integrated",
    "segmentation": "U-Net",
}
"""Column titles of the second opinions' slice scores in the list of positive slices."""


class FindingsPanel(QtWidgets.QWidget):
    """Study decision and PE probability, clot volume, contrast warning, positive slices, cards."""

    def __init__(self, state: ViewerState) -> None:
        super().__init__()
        self.state = state

        self.decision = QtWidgets.QLabel("No study open")
        self.decision.setObjectName("decision")
        self.decision.setWordWrap(True)
        self.summary = QtWidgets.QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning = QtWidgets.QLabel()
        self.warning.setObjectName("warning")
        self.warning.setWordWrap(True)
        self.warning.hide()

        self.slices = QtWidgets.QTreeWidget()
        self.slices.setRootIsDecorated(False)
        self.slices.setUniformRowHeights(True)
        self.second_opinions: tuple[str, ...] = ()
        self._set_columns()
        self.slices.setToolTip(
            "Slices at or above the threshold, highest first, with the second opinions' scores; "
            "click to go there"
        )
        self.slices.itemClicked.connect(self._on_item_clicked)
        self.slices.itemActivated.connect(self._on_item_clicked)

        self.cards = QtWidgets.QTextBrowser()
        self.cards.setOpenLinks(False)
        self.cards.setPlaceholderText("No models loaded")

        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.decision)
        layout.addWidget(self.summary)
        layout.addWidget(self.warning)
        self.slices_label = QtWidgets.QLabel(POSITIVE_SLICES)
        layout.addWidget(self.slices_label)
        layout.addWidget(self.slices, stretch=2)
        layout.addWidget(QtWidgets.QLabel("Models"))
        layout.addWidget(self.cards, stretch=1)

        state.volume_changed.connect(lambda _volume: self.refresh())
        state.results_added.connect(lambda _indices: self.refresh())
        state.study_changed.connect(lambda _study: self.refresh())
        state.assessed.connect(lambda _assessment: self.refresh())
        # Box counts follow the box score cut; the summary names the layers withheld.
        state.layer_changed.connect(
            lambda layer: self.refresh() if layer in WITHHELD_LAYERS else None
        )

    def _set_columns(self) -> None:
        names = [SECOND_OPINION_COLUMNS.get(s, s) for s in self.second_opinions]
        self.slices.setHeaderLabels(["Slice", "z (mm)", "P(PE)", "Boxes", *names])
        for column in range(self.slices.columnCount()):
            self.slices.header().setSectionResizeMode(
                column, QtWidgets.QHeaderView.ResizeMode.ResizeToContents
            )

    def set_models(self, models: ModelsInfo | None, problem: str | None = None) -> None:
        """Show the loaded models' device and cards, or why there are none."""
        self.second_opinions = () if models is None else models.other_scores
        self._set_columns()
        if models is None:
            self.cards.setMarkdown(problem or "")
        else:
            # Card titles become small headings: the panel is narrow.
            cards = "\n\n---\n\n".join(
                re.sub(r"^#{1,3} ", "#### ", card, flags=re.MULTILINE)
                for card in models.cards.values()
            )
            source = SCORE_SOURCES.get(models.score_source or "", "none")
            if models.other_scores:
                seconds = ", ".join(SCORE_SOURCES[name] for name in models.other_scores)
                source += f"  \n**Second opinion (on the badge):** {seconds}"
            rule = (
                ""
                if models.min_clot_ml is None
                else f"  \n**Study PE:** a connected U-Net clot of ≥ {models.min_clot_ml:g} mL"
            )
            if models.triage_cuts is not None:
                disease_cut, pe_cut = models.triage_cuts
                rule += (
                    f"  \n**Triage:** PE at P(PE) ≥ {pe_cut:g}, else other disease at "
                    f"stage 1 ≥ {disease_cut:g}, else normal"
                )
                if models.min_disease_mm is not None:
                    rule += (
                        f"; a study is diseased for a run of ≥ {models.min_disease_mm:g} mm "
                        "of such slices"
                    )
            self.cards.setMarkdown(
                f"**Device:** {models.device}  \n**Slice PE score:** {source}  \n"
                f"**Threshold:** {models.threshold:.2f}{rule}\n\n---\n\n{cards}"
            )
        self.refresh()

    def refresh(self) -> None:
        """Redraw from the state's results (partial while the models still run)."""
        state = self.state
        study = state.study
        assessment = state.assessment
        if state.volume is None:
            self._set_decision("No study open")
            self.summary.clear()
        elif study is not None:
            self._show_study(study)
        else:
            running = (
                f"Running models… {len(state.results)}/{state.volume.shape[0]} slices"
                if state.results
                else "No model results yet"
            )
            if assessment is not None and assessment.reasons:
                self._set_decision(
                    f"PE not assessable: {'; '.join(assessment.reasons)}", NOT_ASSESSABLE_COLOR
                )
                self.summary.setText("\n".join([running, *self._withheld_lines()]))
            else:
                self._set_decision(running)
                self.summary.clear()
        warnings: tuple[str, ...] = ()
        if study is not None:
            warnings = study.warnings
        elif assessment is not None:
            warnings = assessment.warnings
        self.slices_label.setText(
            POSITIVE_SLICES if self.state.findings_valid() else FLAGGED_NOT_ASSESSABLE
        )
        self.warning.setText("\n".join(f"⚠ {w}" for w in warnings))
        self.warning.setVisible(bool(warnings))
        self._fill_slices()

    def _set_decision(self, title: str, color: str | None = None) -> None:
        self.decision.setText(title)
        self.decision.setStyleSheet(
            ""
            if color is None
            else f"background-color: {color}; color: white; "
            "font-weight: 600; font-size: 14pt; padding: 6px;"
        )

    def _withheld_lines(self) -> list[str]:
        if not self.state.withheld:
            return []
        names = ", ".join(
            LAYERS[layer] for layer in WITHHELD_LAYERS if layer in self.state.withheld
        )
        return [
            f"Hidden on this series (slice findings mean nothing here): {names}. Tick them "
            "under Layers to show them."
        ]

    def _show_study(self, study: StudyResult) -> None:
        if study.not_assessable is None:
            title = f"{TRIAGE_NAMES[study.triage]} — study P(PE) {study.pe_probability:.0%}"
            color = TRIAGE_COLORS[study.triage]
            lines = []
        else:  # e.g. without opacified pulmonary arteries the models' PE output means nothing
            title, color = f"PE not assessable: {study.not_assessable}", NOT_ASSESSABLE_COLOR
            lines = [f"Model P(PE) {study.pe_probability:.0%}: no study decision"]
        self._set_decision(title, color)
        flagged = "positive slices" if self.state.findings_valid() else "slices over the threshold"
        lines.append(f"{len(study.positive_slices)} {flagged} of {len(study.slices)}")
        if study.clot_volume_ml is not None and study.largest_clot_ml is not None:
            lines.append(
                f"Clot volume (U-Net mask): {study.clot_volume_ml:.2f} mL, "
                f"largest connected {study.largest_clot_ml:.2f} mL"
            )
        lines.append(f"Contrast: mediastinal blood p90 {study.contrast.p90_hu:.0f} HU")
        self.summary.setText("\n".join(lines + self._withheld_lines()))

    def _fill_slices(self) -> None:
        state = self.state
        positions = state.volume.slice_positions_mm() if state.volume is not None else np.zeros(0)
        self.slices.clear()
        items = []
        for result in state.positive_results():
            item = QtWidgets.QTreeWidgetItem(
                [
                    str(result.index + 1),
                    f"{positions[result.index]:.1f}",
                    f"{result.pe_probability:.2f}",
                    str(len(state.shown_boxes(result))),
                    *(
                        f"{result.model_scores[source]:.2f}"
                        if source in result.model_scores
                        else "–"
                        for source in self.second_opinions
                    ),
                ]
            )
            item.setData(0, QtCore.Qt.ItemDataRole.UserRole, result.index)
            items.append(item)
        self.slices.addTopLevelItems(items)

    def _on_item_clicked(self, item: QtWidgets.QTreeWidgetItem) -> None:
        self.state.set_slice(int(item.data(0, QtCore.Qt.ItemDataRole.UserRole)))
