"""Viewer test fixtures: settings in a temporary folder, dialogs recorded, known-answer models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6 import QtCore, QtWidgets

from pe_models.inference import Pipeline
from pe_models.synth.phantom import generate_phantom
from pe_models.synth.writers import write_study
from pe_viewer.main_window import MainWindow
from tests.model_bundles import make_oracle_bundles

LOAD_TIMEOUT_MS = 20_000
MODELS_TIMEOUT_MS = 60_000


@pytest.fixture
def settings(tmp_path: Path) -> QtCore.QSettings:
    """Preferences in this test's own file: no test sees another's, nor the user's."""
    return QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)


@pytest.fixture(scope="session")
def oracle_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bundles of a segmenter and a detector that find bright vascular-window pixels."""
    folder = tmp_path_factory.mktemp("oracle_bundles")
    make_oracle_bundles(folder)
    return folder


@pytest.fixture(scope="session")
def phantom_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CTPA phantom (48 slices of 128²) with emboli, written as DICOM."""
    folder = tmp_path_factory.mktemp("phantom") / "study"
    write_study(generate_phantom(4, "pe", "test"), folder)
    return folder / "dicom"


def no_models() -> Pipeline:
    raise FileNotFoundError("resources/bundles: no model bundles installed (test)")


def _make_window(
    qtbot, monkeypatch, factory: Callable[[], Pipeline], settings: QtCore.QSettings
) -> MainWindow:
    shown: list[str] = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "warning", lambda _p, _t, text: shown.append(text))
    main_window = MainWindow(pipeline_factory=factory, settings=settings)
    main_window.shown_errors = shown  # type: ignore[attr-defined]
    qtbot.addWidget(main_window)
    main_window.show()
    return main_window


@pytest.fixture
def window(qtbot, monkeypatch: pytest.MonkeyPatch, settings: QtCore.QSettings) -> MainWindow:
    """The window without models (they are not what these tests look at)."""
    return _make_window(qtbot, monkeypatch, no_models, settings)


@pytest.fixture
def oracle_window(
    qtbot, monkeypatch: pytest.MonkeyPatch, oracle_folder: Path, settings: QtCore.QSettings
) -> MainWindow:
    """The window with the known-answer segmenter and detector."""
    bundles = sorted(p for p in oracle_folder.iterdir() if p.is_dir())
    factory = lambda: Pipeline.from_bundles(bundles, batch_size=4)  # noqa: E731
    return _make_window(qtbot, monkeypatch, factory, settings)
