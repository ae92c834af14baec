"""The main window: menus, presets, the slice view, docked panels and the background work."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from pe_models.demo import demo_study_path
from pe_models.inference import Pipeline
from pe_models.io import SeriesInfo
from pe_models.preprocess.windows import window_presets
from pe_models.volume import Volume
from pe_viewer.loader import StudyLoader
from pe_viewer.panels.findings import FindingsPanel
from pe_viewer.panels.layers import LayerPanel
from pe_viewer.panels.model_view import ModelViewPanel
from pe_viewer.panels.series_browser import SeriesBrowserDialog
from pe_viewer.panels.zplot import ZPlotWidget
from pe_viewer.slice_view import SliceViewWidget
from pe_viewer.state import HeatmapKey, LayerStyle, ViewerState
from pe_viewer.worker import InferenceWorker, ModelsInfo, PipelineFactory

RECENT_LIMIT = 10
HEATMAP_DEBOUNCE_MS = 150  # Grad-CAM for the slice the reader stops on, not every slice passed


class MainWindow(QtWidgets.QMainWindow):
    """PE Viewer's window. Studies load, and models run, in the background.

    Parameters
    ----------
    interactive
        False for headless use: errors are reported by signal and status bar, not by dialogs.
    pipeline_factory
        Makes the models' :class:`Pipeline` (default: the bundles in ``resources/bundles``).
    settings
        Where preferences are kept (default: the user's PE Viewer settings).

    Signals
    -------
    volume_loaded(object)
        Emitted with the :class:`Volume` once a study is fully loaded.
    load_failed(str)
        Emitted with the message shown to the user.
    study_ready(object)
        The :class:`StudyResult` once the models have seen every slice.
    inference_failed(str)
        The models could not be loaded or failed; the viewer goes on without them.
    """

    volume_loaded = QtCore.Signal(object)
    load_failed = QtCore.Signal(str)
    study_ready = QtCore.Signal(object)
    inference_failed = QtCore.Signal(str)

    def __init__(
        self,
        *,
        interactive: bool = True,
        pipeline_factory: PipelineFactory = Pipeline.load_default,
        settings: QtCore.QSettings | None = None,
    ) -> None:
        super().__init__()
        self._interactive = interactive  # False: no modal dialogs (headless screenshots)
        self.setWindowTitle("PE Viewer — research use only, not for clinical use")
        self.resize(1400, 900)
        self._settings = settings or QtCore.QSettings("PE Viewer", "PE Viewer")
        self._path: Path | None = None
        self._inference_started = 0.0

        self.state = ViewerState(self)
        self.slice_view = SliceViewWidget(self.state)
        self.setCentralWidget(self.slice_view)
        self.findings = FindingsPanel(self.state)
        self.layers = LayerPanel(self.state)
        self.model_view = ModelViewPanel(self.state)
        self.zplot = ZPlotWidget(self.state)
        self.docks = {
            "findings": self._dock(
                "Findings", self.findings, QtCore.Qt.DockWidgetArea.RightDockWidgetArea
            ),
            "layers": self._dock(
                "Layers", self.layers, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea
            ),
            "model_view": self._dock(
                "What the model saw", self.model_view, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea
            ),
            "zplot": self._dock(
                "P(PE) along z", self.zplot, QtCore.Qt.DockWidgetArea.BottomDockWidgetArea
            ),
        }

        self.loader = StudyLoader(self)
        self.loader.preview.connect(lambda _z, hu: self.slice_view.show_preview(hu))
        self.loader.progress.connect(self._on_load_progress)
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(self._on_failed)
        self.loader.choose_series.connect(self._on_choose_series)

        self.worker = InferenceWorker(pipeline_factory, self)
        self.worker.ready.connect(self._on_models_ready)
        self.worker.assessed.connect(self.state.set_assessment)
        self.worker.results.connect(self._on_results)
        self.worker.study.connect(self._on_study)
        self.worker.heatmap.connect(self.state.add_heatmap)
        self.worker.heatmap_failed.connect(self._on_heatmap_failed)
        self._heatmap_failures: set[HeatmapKey] = set()  # not asked for again
        self.worker.failed.connect(self._on_inference_failed)

        self._build_status_bar()
        self._build_menus()
        self.setAcceptDrops(True)

        self._heatmap_timer = QtCore.QTimer(self, singleShot=True, interval=HEATMAP_DEBOUNCE_MS)
        self._heatmap_timer.timeout.connect(self.request_heatmap)
        self.state.slice_changed.connect(self._on_slice_changed)
        self.state.layer_changed.connect(self._on_layer_changed)
        # Side panels run the full height; the z-plot is a strip under the image only.
        corner, area = QtCore.Qt.Corner, QtCore.Qt.DockWidgetArea
        self.setCorner(corner.BottomLeftCorner, area.LeftDockWidgetArea)
        self.setCorner(corner.BottomRightCorner, area.RightDockWidgetArea)
        self.resizeDocks(
            [self.docks["layers"], self.docks["findings"]],
            [300, 330],
            QtCore.Qt.Orientation.Horizontal,
        )
        self.docks["model_view"].hide()  # shown with its layer, "What the model saw"
        if interactive:  # headless screenshots look the same on every machine
            self._restore_settings()
        else:
            self.apply_preset("vascular")

    def _dock(
        self, title: str, widget: QtWidgets.QWidget, area: QtCore.Qt.DockWidgetArea
    ) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self) -> None:
        self._readout = QtWidgets.QLabel()
        self._load_progress = QtWidgets.QProgressBar()
        self._load_progress.setMaximumWidth(200)
        self._load_progress.setFormat("loading %v/%m")
        self._load_progress.hide()
        self._inference_progress = QtWidgets.QProgressBar()
        self._inference_progress.setMaximumWidth(200)
        self._inference_progress.setFormat("models %v/%m")
        self._inference_progress.hide()
        self.device_label = QtWidgets.QLabel("models: not loaded")
        for widget in (
            self._readout,
            self._load_progress,
            self._inference_progress,
            self.device_label,
        ):
            self.statusBar().addPermanentWidget(widget)
        self.slice_view.cursor_readout.connect(self._readout.setText)

    # -- menus and actions ---------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_folder = file_menu.addAction("Open &folder…", self._ask_folder)
        open_folder.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        file_menu.addAction("Open f&ile…", self._ask_file)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction("Open the &demo study", lambda: self.open_path(demo_study_path()))
        file_menu.addSeparator()
        file_menu.addAction("&Quit", self.close).setShortcut(QtGui.QKeySequence.StandardKey.Quit)

        toolbar = self.addToolBar("Window presets")
        toolbar.setObjectName("window_presets")
        self.preset_actions: dict[str, QtGui.QAction] = {}
        group = QtGui.QActionGroup(self)
        for preset in window_presets().values():
            if not preset.key:
                continue
            action = toolbar.addAction(f"{preset.name.capitalize()} ({preset.key})")
            action.setCheckable(True)
            action.setShortcut(preset.key)
            action.setToolTip(f"L {preset.level:g} W {preset.width:g}: {preset.description}")
            action.triggered.connect(lambda _=False, name=preset.name: self.apply_preset(name))
            group.addAction(action)
            self.preset_actions[preset.name] = action

        go_menu = self.menuBar().addMenu("&Go")
        next_finding = go_menu.addAction("&Next positive slice", lambda: self.jump_to_finding(+1))
        next_finding.setShortcut("N")
        previous = go_menu.addAction("&Previous positive slice", lambda: self.jump_to_finding(-1))
        previous.setShortcut("Shift+N")

        view_menu = self.menuBar().addMenu("&View")
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addAction("Reset zoom", lambda: self.slice_view._view.autoRange(padding=0))

    def apply_preset(self, name: str) -> None:
        """Show the image through window preset ``name``."""
        self.slice_view.set_window(window_presets()[name])
        self.preset_actions[name].setChecked(True)
        if self._interactive:
            self._settings.setValue("window_preset", name)

    def jump_to_finding(self, step: int) -> None:
        """Go to the next (``step`` +1) or previous (-1) positive slice (see positive_results)."""
        z = self.state.z
        ahead = [r.index for r in self.state.positive_results() if (r.index - z) * step > 0]
        if ahead:
            self.state.set_slice(min(ahead, key=lambda p: abs(p - z)))

    def _ask_folder(self) -> None:
        start = str(self._settings.value("last_folder", str(Path.home())))
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Open DICOM folder", start)
        if folder:
            self.open_path(folder)

    def _ask_file(self) -> None:
        start = str(self._settings.value("last_folder", str(Path.home())))
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self,
            "Open study file",
            start,
            "CT (*.dcm *.nii *.nii.gz *.nrrd *.mha *.mhd DICOMDIR);;All files (*)",
        )
        if path:
            self.open_path(path)

    def recent_paths(self) -> list[str]:
        """Studies opened before, most recent first."""
        value = self._settings.value("recent", [])
        if isinstance(value, str):  # QSettings gives a one-item list back as a string
            return [value]
        return [str(v) for v in value] if isinstance(value, list) else []

    def _remember(self, path: Path) -> None:
        recent = [str(path), *(p for p in self.recent_paths() if p != str(path))]
        self._settings.setValue("recent", recent[:RECENT_LIMIT])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.recent_paths():
            self.recent_menu.addAction(path, lambda p=path: self.open_path(p))  # type: ignore[misc]
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none)").setEnabled(False)

    def open_path(self, path: str | Path, series_uid: str | None = None) -> None:
        """Load a DICOM folder, DICOMDIR, DICOM file or NIfTI/NRRD/MHA file in the background.

        Whatever was loading is cancelled; the models on the study shown stop once the new
        one has loaded (if it fails to load, the study shown keeps its results coming).
        """
        self._path = Path(path)
        if self._interactive:
            self._settings.setValue(
                "last_folder", str(self._path.parent if self._path.is_file() else self._path)
            )
        self.statusBar().showMessage(f"Loading {self._path} …")
        self._load_progress.setValue(0)
        self._load_progress.show()
        self.loader.load(self._path, series_uid)

    # -- loader results ------------------------------------------------------------------
    def _on_load_progress(self, done: int, total: int) -> None:
        self._load_progress.setMaximum(total)
        self._load_progress.setValue(done)

    def _on_loaded(self, volume: Volume) -> None:
        self._load_progress.hide()
        if self._path is not None and self._interactive:
            self._remember(self._path)
        self.state.set_volume(volume)
        warnings = "; ".join(volume.meta.warnings)
        self.statusBar().showMessage(
            f"{volume.meta.description}: {volume.shape[0]} slices, "
            f"{volume.spacing[1]:.3g}×{volume.spacing[2]:.3g}×{volume.spacing[0]:.3g} mm"
            + (f" — {warnings}" if warnings else "")
        )
        self._inference_started = time.perf_counter()
        self._inference_progress.setRange(0, volume.shape[0])
        self._inference_progress.setValue(0)
        self._inference_progress.show()
        self.worker.start(volume, self.state.z)
        self.volume_loaded.emit(volume)

    def _on_failed(self, message: str) -> None:
        self._load_progress.hide()
        self.statusBar().showMessage("Could not open the study")
        self.load_failed.emit(message)
        if self._interactive:
            QtWidgets.QMessageBox.warning(self, "Could not open the study", message)

    def _on_choose_series(self, series: list[SeriesInfo]) -> None:
        self._load_progress.hide()
        dialog = SeriesBrowserDialog(series, str(self._path), self)
        if not self._interactive:
            chosen: SeriesInfo | None = dialog.series[dialog.default_row()]
        elif dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            chosen = dialog.chosen()
        else:
            chosen = None
        if chosen is not None and chosen.problem is None and self._path is not None:
            self.open_path(self._path, chosen.series_uid)
        else:
            self.statusBar().showMessage("No series opened")

    # -- worker results ------------------------------------------------------------------
    def _on_models_ready(self, models: ModelsInfo) -> None:
        self.state.threshold = models.threshold
        if models.box_score_cut is not None:
            self.state.offer_min_box_score(models.box_score_cut)
            self.layers.sync()
        self.slice_view.score_source = models.score_source
        self.zplot.set_second_opinions(models.other_scores, models.score_source)
        self.device_label.setText(f"models on {models.device}")
        self.findings.set_models(models)
        self.layers.set_models(models)
        self.model_view.set_models(models)
        self.request_heatmap()

    def _on_results(self, results: list, done: int, total: int) -> None:
        self.state.add_results(results)
        self._inference_progress.setMaximum(total)
        self._inference_progress.setValue(done)

    def _on_study(self, study: object) -> None:
        self.state.set_study(study)  # type: ignore[arg-type]
        self._inference_progress.hide()
        seconds = time.perf_counter() - self._inference_started
        self.statusBar().showMessage(f"Models finished in {seconds:.1f} s", 10_000)
        self.study_ready.emit(study)

    def _on_inference_failed(self, message: str) -> None:
        self._inference_progress.hide()
        self.device_label.setText("models: unavailable")
        self.findings.set_models(None, message)
        self.statusBar().showMessage(message)
        self.inference_failed.emit(message)

    # -- Grad-CAM on demand --------------------------------------------------------------
    def _on_slice_changed(self, z: int) -> None:
        self.worker.set_focus(z)
        if self.state.styles["heatmap"].visible:
            self._heatmap_timer.start()

    def _on_layer_changed(self, layer: str) -> None:
        style = self.state.styles[layer]
        if self._interactive:
            self._settings.setValue(f"layers/{layer}", [style.visible, style.opacity])
            self._settings.setValue("cam_method", self.state.cam_method)
            if self.state.min_box_score_chosen:  # else the detector bundle's cut applies
                self._settings.setValue("min_box_score", self.state.min_box_score)
        if layer == "heatmap":
            self.request_heatmap()
        if layer == "model_view" and style.visible:
            self.docks["model_view"].show()

    def request_heatmap(self) -> None:
        """Ask the worker for the current slice's Grad-CAM if it is wanted and not yet known."""
        key = self.state.heatmap_key()
        volume = self.state.volume
        if (
            volume is None
            or key is None
            or not self.state.styles["heatmap"].visible
            or key in self.state.heatmaps
            or key in self._heatmap_failures
        ):
            return
        self.worker.request_heatmap(volume, key)

    def _on_heatmap_failed(self, key: HeatmapKey, message: str) -> None:
        self._heatmap_failures.add(key)
        self.statusBar().showMessage(message, 15_000)

    # -- settings ------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        preset = self._settings.value("window_preset", "vascular")
        self.apply_preset(preset if preset in window_presets() else "vascular")
        for layer in self.state.styles:
            saved = self._settings.value(f"layers/{layer}")
            if isinstance(saved, list) and len(saved) == 2:
                visible = str(saved[0]).lower() == "true"
                self.state.styles[layer] = LayerStyle(visible, float(saved[1]))
        method = str(self._settings.value("cam_method", "gradcam"))
        self.state.set_cam(method=method)
        saved_cut = self._settings.value("min_box_score")
        with contextlib.suppress(TypeError, ValueError):  # none, or hand-edited: keep the default
            self.state.set_min_box_score(float(str(saved_cut)), chosen=True)
        self.layers.sync()
        geometry = self._settings.value("geometry")
        if isinstance(geometry, QtCore.QByteArray):
            self.restoreGeometry(geometry)
        window_state = self._settings.value("window_state")
        if isinstance(window_state, QtCore.QByteArray):
            self.restoreState(window_state)

    # -- drag and drop -------------------------------------------------------------------
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        """Accept dropped files and folders."""
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802 - Qt override
        """Open the first dropped file or folder."""
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.open_path(urls[0].toLocalFile())

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt override
        """Remember the layout and stop background work before the window goes."""
        if self._interactive:
            self._settings.setValue("geometry", self.saveGeometry())
            self._settings.setValue("window_state", self.saveState())
        self.loader.cancel()
        self.worker.cancel()
        self.loader.wait()
        self.worker.wait()
        super().closeEvent(event)

    def grab_image(self) -> np.ndarray:
        """The window as an (h, w, 4) uint8 array, for screenshots and tests."""
        image = self.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGBA8888)
        rows = np.array(image.constBits(), dtype=np.uint8).reshape(image.height(), -1)
        return rows[:, : image.width() * 4].reshape(image.height(), image.width(), 4)
