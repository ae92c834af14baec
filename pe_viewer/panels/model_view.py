"""What the model saw: the crop and windowed input one model gets for the current slice."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from pe_models.inference import ModelView, model_view
from pe_viewer.state import ViewerState
from pe_viewer.worker import ModelsInfo

DEBOUNCE_MS = 60  # while scrolling fast, only the slice the reader stops on is prepared


class ModelViewPanel(QtWidgets.QWidget):
    """The model input of the current slice: one grey image per input window, in a row or column.

    It follows the Grad-CAM target (else the first model) and works only while its layer
    ("What the model saw") is visible: preparing an input runs the lung crop.
    """

    def __init__(self, state: ViewerState) -> None:
        super().__init__()
        self.state = state
        self.models: ModelsInfo | None = None
        self.view: ModelView | None = None
        self.caption = QtWidgets.QLabel("Turn on “What the model saw” in the layers")
        self.caption.setWordWrap(True)
        self._graphics = pg.GraphicsLayoutWidget()
        self._graphics.setBackground("k")
        self._box = self._graphics.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self._image = pg.ImageItem(axisOrder="row-major")
        self._box.addItem(self._image)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.caption)
        layout.addWidget(self._graphics, stretch=1)
        self._timer = QtCore.QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self.update_view)
        state.slice_changed.connect(lambda _z: self._timer.start())
        state.volume_changed.connect(lambda _v: self._timer.start())
        state.layer_changed.connect(self._on_layer_changed)

    def set_models(self, models: ModelsInfo | None) -> None:
        """Use these models' input recipes."""
        self.models = models
        self._timer.start()

    def _on_layer_changed(self, layer: str) -> None:
        if layer in ("model_view", "heatmap"):
            self._timer.start()

    def task(self) -> str | None:
        """The model whose input is shown."""
        if self.models is None or not self.models.configs:
            return None
        if self.state.cam_target in self.models.configs:
            return self.state.cam_target
        return next(iter(self.models.configs))

    def update_view(self) -> None:
        """Prepare and show the current slice's model input (when the layer is on)."""
        task = self.task()
        volume = self.state.volume
        if not self.state.styles["model_view"].visible or task is None or volume is None:
            self.view = None
            self._image.clear()
            if task is None:
                self.caption.setText("No models loaded")
            return
        assert self.models is not None
        config = self.models.configs[task]
        self.view = model_view(volume, self.state.z, config)
        crop = self.view.crop
        tall = self._graphics.height() >= self._graphics.width()
        tiles = np.concatenate(list(self.view.channels), axis=0 if tall else 1)
        self._image.setImage(tiles, levels=(0.0, 1.0), autoLevels=False)
        self._box.autoRange(padding=0.01)
        self.caption.setText(
            f"{task}: {' | '.join(self.view.windows)} windows, {config.input_size} px, "
            f"{crop.method} crop rows {crop.y0}-{crop.y1}, columns {crop.x0}-{crop.x1}"
        )
