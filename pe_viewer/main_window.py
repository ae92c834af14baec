"""The main window: file menu, window presets, the slice view and the status bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from pe_models.io import SeriesInfo
from pe_models.preprocess.windows import window_presets
from pe_models.volume import Volume
from pe_viewer.loader import StudyLoader
from pe_viewer.slice_view import SliceViewWidget


def describe_series(series: SeriesInfo) -> str:
    """One line for a series chooser."""
    number = f"#{series.series_number} " if series.series_number is not None else ""
    problem = f" — cannot load: {series.problem}" if series.problem else ""
    return (
        f"{number}{series.description or '(no description)'} — {series.modality}, "
        f"{series.n_images} images, {series.orientation}, {series.contrast_hint}{problem}"
    )


class MainWindow(QtWidgets.QMainWindow):
    """PE Viewer's window. Opening a study loads it in the background.

    Parameters
    ----------
    interactive
        False for headless use: errors are reported by signal and status bar, not by dialogs.

    Signals
    -------
    volume_loaded(object)
        Emitted with the :class:`Volume` once a study is fully loaded.
    load_failed(str)
        Emitted with the message shown to the user.
    """

    volume_loaded = QtCore.Signal(object)
    load_failed = QtCore.Signal(str)

    def __init__(self, *, interactive: bool = True) -> None:
        super().__init__()
        self._interactive = interactive  # False: no modal dialogs (headless screenshots)
        self.setWindowTitle("PE Viewer — research use only, not for clinical use")
        self.resize(1100, 900)
        self._settings = QtCore.QSettings("PE Viewer", "PE Viewer")
        self._path: Path | None = None

        self.slice_view = SliceViewWidget()
        self.setCentralWidget(self.slice_view)
        self.loader = StudyLoader(self)
        self.loader.preview.connect(lambda _z, hu: self.slice_view.show_preview(hu))
        self.loader.progress.connect(self._on_progress)
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(self._on_failed)
        self.loader.choose_series.connect(self._on_choose_series)

        self._progress = QtWidgets.QProgressBar()
        self._progress.setMaximumWidth(220)
        self._progress.hide()
        self._readout = QtWidgets.QLabel()
        self.statusBar().addPermanentWidget(self._readout)
        self.statusBar().addPermanentWidget(self._progress)
        self.slice_view.cursor_readout.connect(self._readout.setText)

        self._build_menus()
        self.setAcceptDrops(True)
        preset = self._settings.value("window_preset", "vascular")
        self.apply_preset(preset if preset in window_presets() else "vascular")

    # -- actions -------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_folder = file_menu.addAction("Open &folder…", self._ask_folder)
        open_folder.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        file_menu.addAction("Open f&ile…", self._ask_file)
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

    def apply_preset(self, name: str) -> None:
        """Show the image through window preset ``name``."""
        self.slice_view.set_window(window_presets()[name])
        self.preset_actions[name].setChecked(True)
        self._settings.setValue("window_preset", name)

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

    def open_path(self, path: str | Path, series_uid: str | None = None) -> None:
        """Load a DICOM folder, DICOMDIR, DICOM file or NIfTI/NRRD/MHA file in the background."""
        self._path = Path(path)
        self._settings.setValue(
            "last_folder", str(self._path.parent if self._path.is_file() else self._path)
        )
        self.statusBar().showMessage(f"Loading {self._path} …")
        self._progress.setValue(0)
        self._progress.show()
        self.loader.load(self._path, series_uid)

    # -- loader results ------------------------------------------------------------------
    def _on_progress(self, done: int, total: int) -> None:
        self._progress.setMaximum(total)
        self._progress.setValue(done)

    def _on_loaded(self, volume: Volume) -> None:
        self._progress.hide()
        self.slice_view.set_volume(volume)
        warnings = "; ".join(volume.meta.warnings)
        self.statusBar().showMessage(
            f"{volume.meta.description}: {volume.shape[0]} slices, "
            f"{volume.spacing[1]:.3g}×{volume.spacing[2]:.3g}×{volume.spacing[0]:.3g} mm"
            + (f" — {warnings}" if warnings else "")
        )
        self.volume_loaded.emit(volume)

    def _on_failed(self, message: str) -> None:
        self._progress.hide()
        self.statusBar().showMessage("Could not open the study")
        self.load_failed.emit(message)
        if self._interactive:
            QtWidgets.QMessageBox.warning(self, "Could not open the study", message)

    def _on_choose_series(self, series: list[SeriesInfo]) -> None:
        self._progress.hide()
        loadable = [s for s in series if s.problem is None] or series
        default = max(range(len(loadable)), key=lambda i: loadable[i].n_images)
        if not self._interactive and self._path is not None:
            self.open_path(self._path, loadable[default].series_uid)
            return
        lines = [describe_series(s) for s in loadable]
        choice, accepted = QtWidgets.QInputDialog.getItem(
            self,
            "Choose a series",
            f"{self._path} holds {len(series)} series:",
            lines,
            default,
            False,
        )
        if accepted and self._path is not None:
            self.open_path(self._path, loadable[lines.index(choice)].series_uid)

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
        """Stop background work before the window goes."""
        self.loader.cancel()
        self.loader.wait()
        super().closeEvent(event)

    def grab_image(self) -> np.ndarray:
        """The window as an (h, w, 4) uint8 array, for screenshots and tests."""
        image = self.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGBA8888)
        rows = np.array(image.constBits(), dtype=np.uint8).reshape(image.height(), -1)
        return rows[:, : image.width() * 4].reshape(image.height(), image.width(), 4)
