"""The layer panel: overlays' visibility and opacity, the box score cut, what Grad-CAM explains."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from pe_models.explain import CAM_METHODS
from pe_viewer.state import LAYERS, ViewerState
from pe_viewer.worker import ModelsInfo

EXPLAINABLE = ("classification", "triage_stage2", "triage_stage1", "segmentation", "detection")
"""Tasks Grad-CAM can explain, in the order of preference for the default."""

LAYER_MODELS: dict[str, tuple[str, ...]] = {
    "mask": ("segmentation", "integrated"),
    "boxes": ("detection", "integrated"),
}
"""Layers drawn from one kind of model, and the tasks that give it; the others always apply."""


class LayerPanel(QtWidgets.QWidget):
    """A row per overlay layer (visible, opacity), the lowest box score, Grad-CAM's target."""

    def __init__(self, state: ViewerState) -> None:
        super().__init__()
        self.state = state
        self.visible: dict[str, QtWidgets.QCheckBox] = {}
        self.opacity: dict[str, QtWidgets.QSlider] = {}
        grid = QtWidgets.QGridLayout(self)
        for row, (layer, label) in enumerate(LAYERS.items()):
            check = QtWidgets.QCheckBox(label)
            check.toggled.connect(lambda on, name=layer: state.set_style(name, visible=on))
            slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
            slider.setRange(0, 100)
            slider.setToolTip("Opacity")
            slider.valueChanged.connect(
                lambda value, name=layer: state.set_style(name, opacity=value / 100)
            )
            grid.addWidget(check, row, 0)
            grid.addWidget(slider, row, 1)
            self.visible[layer], self.opacity[layer] = check, slider
        row = len(LAYERS)
        self.min_box_score = QtWidgets.QDoubleSpinBox()
        self.min_box_score.setRange(0.0, 1.0)  # as the state takes it: a checkpoint may keep < 0.05
        self.min_box_score.setSingleStep(0.05)
        self.min_box_score.setDecimals(2)
        self.min_box_score.setToolTip("Boxes scoring below this are neither drawn nor counted")
        self.min_box_score.valueChanged.connect(
            lambda value: state.set_min_box_score(value, chosen=True)
        )
        self.min_box_score_label = QtWidgets.QLabel("Box score ≥")
        grid.addWidget(self.min_box_score_label, row, 0)
        grid.addWidget(self.min_box_score, row, 1)
        row += 1
        self.cam_target = QtWidgets.QComboBox()
        self.cam_target.setToolTip("The model Grad-CAM explains")
        self.cam_target.currentTextChanged.connect(
            lambda text: state.set_cam(target=text) if text else None
        )
        self.cam_method = QtWidgets.QComboBox()
        self.cam_method.addItems(list(CAM_METHODS))
        self.cam_method.setToolTip("CAM method (detection always uses EigenCAM)")
        self.cam_method.currentTextChanged.connect(lambda text: state.set_cam(method=text))
        grid.addWidget(QtWidgets.QLabel("Grad-CAM of"), row, 0)
        grid.addWidget(self.cam_target, row, 1)
        grid.addWidget(QtWidgets.QLabel("Method"), row + 1, 0)
        grid.addWidget(self.cam_method, row + 1, 1)
        grid.setRowStretch(row + 2, 1)
        state.layer_changed.connect(lambda _layer: self.sync())
        self.sync()

    def set_models(self, models: ModelsInfo | None) -> None:
        """Offer the loaded models that Grad-CAM can explain; grey out layers none can draw."""
        loaded = set() if models is None else set(models.configs)
        for layer, tasks_drawing in LAYER_MODELS.items():
            available = bool(loaded & set(tasks_drawing))
            widgets: list[QtWidgets.QWidget] = [self.visible[layer], self.opacity[layer]]
            if layer == "boxes":
                widgets += [self.min_box_score, self.min_box_score_label]
            for widget in widgets:
                widget.setEnabled(available)
            self.visible[layer].setToolTip(
                "" if available else f"No {' or '.join(tasks_drawing)} model is loaded"
            )
        tasks = [t for t in EXPLAINABLE if t in loaded]
        with QtCore.QSignalBlocker(self.cam_target):
            self.cam_target.clear()
            self.cam_target.addItems(tasks)
        if tasks:
            wanted = self.state.cam_target if self.state.cam_target in tasks else tasks[0]
            self.cam_target.setCurrentText(wanted)
            self.state.set_cam(target=wanted)
        self.cam_target.setEnabled(bool(tasks))

    def sync(self) -> None:
        """Show the state's styles without feeding changes back."""
        for layer in self.state.styles:
            style = self.state.shown_style(layer)
            with (
                QtCore.QSignalBlocker(self.visible[layer]),
                QtCore.QSignalBlocker(self.opacity[layer]),
            ):
                self.visible[layer].setChecked(style.visible)
                self.opacity[layer].setValue(round(style.opacity * 100))
        with QtCore.QSignalBlocker(self.min_box_score):
            self.min_box_score.setValue(self.state.min_box_score)
        with QtCore.QSignalBlocker(self.cam_method):
            self.cam_method.setCurrentText(self.state.cam_method)
