"""The viewer, driven as a user would, offscreen (pytest-qt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from pe_models.preprocess.windows import get_preset
from pe_viewer.app import main
from pe_viewer.main_window import MainWindow
from pe_viewer.panels.series_browser import SeriesBrowserDialog
from tests.dicom_factory import ramp_volume, write_series
from tests.viewer.conftest import LOAD_TIMEOUT_MS


@pytest.fixture
def series(tmp_path: Path) -> tuple[Path, np.ndarray]:
    hu = ramp_volume((9, 48, 64))
    write_series(tmp_path / "study", hu, description="SYNTHETIC CTA")
    return tmp_path / "study", hu


def _open(qtbot, window: MainWindow, path: Path) -> object:
    with qtbot.waitSignal(window.volume_loaded, timeout=LOAD_TIMEOUT_MS) as blocker:
        window.open_path(path)
    return blocker.args[0]


def test_open_shows_the_middle_slice_with_the_vascular_window(qtbot, window, series) -> None:
    folder, hu = series
    volume = _open(qtbot, window, folder)
    view = window.slice_view
    assert volume.shape == (9, 48, 64)
    assert view.slice_index == 4
    np.testing.assert_array_equal(view._image.image, hu[4])
    vascular = get_preset("vascular")
    assert view.levels == (vascular.low, vascular.high)


def test_keys_and_wheel_move_through_slices(qtbot, window, series) -> None:
    _open(qtbot, window, series[0])
    view = window.slice_view
    view.setFocus()
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Up)
    assert view.slice_index == 5
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Down)
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Down)
    assert view.slice_index == 3
    qtbot.keyClick(view, QtCore.Qt.Key.Key_End)
    assert view.slice_index == 8
    qtbot.keyClick(view, QtCore.Qt.Key.Key_PageDown)
    assert view.slice_index == 0
    qtbot.keyClick(view, QtCore.Qt.Key.Key_PageUp)
    assert view.slice_index == 8  # clamped at the top

    viewport = view._graphics.viewport()
    centre = QtCore.QPointF(viewport.width() / 2, viewport.height() / 2)
    for delta in (-120, -120):
        event = QtGui.QWheelEvent(
            centre,
            viewport.mapToGlobal(centre),
            QtCore.QPoint(),
            QtCore.QPoint(0, delta),
            QtCore.Qt.MouseButton.NoButton,
            QtCore.Qt.KeyboardModifier.NoModifier,
            QtCore.Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QtWidgets.QApplication.sendEvent(viewport, event)
    assert view.slice_index == 6


def test_the_slice_bar_follows_the_slice_and_moves_it(qtbot, window, series) -> None:
    _open(qtbot, window, series[0])
    view = window.slice_view
    bar = view._slice_bar
    view.setFocus()
    qtbot.keyClick(view, QtCore.Qt.Key.Key_End)
    assert bar.value == 8
    qtbot.mouseClick(bar, QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(5, 0))
    assert view.slice_index == 0  # the top of the bar is the first slice
    qtbot.mouseClick(bar, QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(5, bar.height() // 2))
    assert view.slice_index == 4
    bar.set_value(99)
    assert bar.value == 8  # clamped, and marking a slice does not move the view
    assert view.slice_index == 4


@pytest.mark.parametrize(
    ("key", "preset"), [("2", "lung"), ("3", "mediastinal"), ("1", "vascular")]
)
def test_preset_keys_set_the_image_levels(qtbot, window, series, key: str, preset: str) -> None:
    _open(qtbot, window, series[0])
    window.activateWindow()
    qtbot.keyClick(window.slice_view, key)
    expected = (get_preset(preset).low, get_preset(preset).high)
    assert window.slice_view.levels == expected
    assert tuple(window.slice_view._image.levels) == pytest.approx(expected)


def test_bad_folder_shows_an_error_and_the_app_stays_usable(
    qtbot, window, series, tmp_path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_TIMEOUT_MS) as blocker:
        window.open_path(empty)
    assert str(empty) in blocker.args[0]
    assert window.shown_errors == [blocker.args[0]]
    volume = _open(qtbot, window, series[0])
    assert volume.shape[0] == 9


def test_reopening_cancels_the_running_load(qtbot, window, series, tmp_path) -> None:
    big = tmp_path / "big"
    write_series(big, ramp_volume((120, 256, 256)), description="BIG")
    loaded: list[object] = []
    window.volume_loaded.connect(loaded.append)
    window.open_path(big)
    volume = _open(qtbot, window, series[0])
    assert volume.meta.description == "SYNTHETIC CTA"
    qtbot.wait(200)
    window.loader.wait()
    qtbot.wait(50)
    assert [v.meta.description for v in loaded] == ["SYNTHETIC CTA"]


def test_a_folder_with_several_series_asks_which_one(qtbot, window, tmp_path, monkeypatch) -> None:
    write_series(tmp_path / "two" / "a", ramp_volume((3, 16, 16)), description="THIN")
    write_series(tmp_path / "two" / "b", ramp_volume((5, 16, 16)), description="THICK")
    offered: list[SeriesBrowserDialog] = []

    def accept_the_default(dialog: SeriesBrowserDialog) -> int:
        offered.append(dialog)
        return QtWidgets.QDialog.DialogCode.Accepted

    monkeypatch.setattr(SeriesBrowserDialog, "exec", accept_the_default)
    volume = _open(qtbot, window, tmp_path / "two")
    assert volume.meta.description == "THICK"  # the longest series is preselected
    (dialog,) = offered
    assert dialog.table.rowCount() == 2
    assert sorted(dialog.table.item(r, 2).text() for r in range(2)) == ["THICK", "THIN"]
    assert all(not dialog.table.item(r, 0).icon().isNull() for r in range(2))  # thumbnails


def _red_pixels(path: Path) -> int:
    """Pixels of the PE-mask red (the only strongly red thing the viewer draws)."""
    image = QtGui.QImage(str(path)).convertToFormat(QtGui.QImage.Format.Format_RGB888)
    rows = np.array(image.constBits(), dtype=np.uint8).reshape(image.height(), -1)
    rgb = rows[:, : image.width() * 3].reshape(image.height(), image.width(), 3).astype(int)
    return int(((rgb[..., 0] > 150) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)).sum())


def test_screenshot_is_not_blank_and_shows_the_overlays(
    qtbot, tmp_path, phantom_study, oracle_folder
) -> None:
    target = tmp_path / "shot.png"
    code = main([str(phantom_study), "--screenshot", str(target), "--bundles", str(oracle_folder)])
    assert code == 0
    image = QtGui.QImage(str(target))
    assert image.width() > 400
    grey = np.array(
        [
            image.pixelColor(x, y).value()
            for x in range(0, image.width(), 7)
            for y in range(0, image.height(), 7)
        ]
    )
    assert grey.std() > 20  # an image with content, not a flat fill
    assert _red_pixels(target) > 50  # the oracle's mask is drawn


def test_screenshot_without_models_still_shows_the_study(qtbot, tmp_path, phantom_study) -> None:
    target = tmp_path / "shot.png"
    code = main([str(phantom_study), "--screenshot", str(target), "--bundles", str(tmp_path)])
    assert code == 0
    assert _red_pixels(target) < 50


@pytest.mark.slow
def test_demo_screenshot_shows_the_shipped_models_finding_the_clot(
    qtbot, tmp_path, monkeypatch
) -> None:
    if not (Path(__file__).resolve().parents[2] / "resources" / "bundles" / "unet").is_dir():
        pytest.skip("no demo U-Net installed")
    monkeypatch.setenv("PE_VIEWER_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "demo.png"
    assert main(["--demo", "--screenshot", str(target)]) == 0
    assert _red_pixels(target) > 20  # the shipped U-Net's mask on the best slice


def test_preferences_are_remembered(qtbot, window, series, settings, monkeypatch) -> None:
    _open(qtbot, window, series[0])
    window.apply_preset("lung")
    window.layers.visible["heatmap"].setChecked(True)
    window.layers.opacity["mask"].setValue(30)
    window.layers.min_box_score.setValue(0.8)
    window.close()
    settings.sync()

    again = MainWindow(pipeline_factory=window.worker._factory, settings=settings)
    qtbot.addWidget(again)
    lung = get_preset("lung")
    assert again.slice_view.levels == (lung.low, lung.high)
    assert again.state.styles["heatmap"].visible
    assert again.state.styles["mask"].opacity == pytest.approx(0.3)
    assert again.state.min_box_score == pytest.approx(0.8)
    assert again.layers.min_box_score.value() == pytest.approx(0.8)
    assert again.recent_paths() == [str(series[0])]
    again.recent_menu.aboutToShow.emit()
    assert [a.text() for a in again.recent_menu.actions()] == [str(series[0])]


def test_dropping_a_folder_opens_it(qtbot, window, series) -> None:
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(series[0]))])
    position = QtCore.QPointF(window.width() / 2, window.height() / 2)
    drop = QtGui.QDropEvent(
        position,
        QtCore.Qt.DropAction.CopyAction,
        mime,
        QtCore.Qt.MouseButton.LeftButton,
        QtCore.Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(window.volume_loaded, timeout=LOAD_TIMEOUT_MS) as blocker:
        window.dropEvent(drop)
    assert blocker.args[0].shape == (9, 48, 64)
