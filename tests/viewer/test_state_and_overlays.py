"""The evented viewer state and the overlay helpers, without a window."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from pe_models.bundle import BundleConfig
from pe_models.inference import SliceResult, StudyResult
from pe_models.preprocess.lung_crop import CropBox
from pe_models.study_checks import ContrastCheck
from pe_models.volume import Volume
from pe_viewer.overlays import (
    BELOW_THRESHOLD_COLOR,
    TRIAGE_COLORS,
    SliceOverlays,
    bounding_patch,
    heatmap_lut,
    heatmap_patch,
    mask_patch,
    triage_text,
)
from pe_viewer.panels.findings import FindingsPanel
from pe_viewer.panels.layers import LayerPanel
from pe_viewer.panels.zplot import ZPlotWidget
from pe_viewer.pixmaps import TextItem
from pe_viewer.state import HeatmapKey, LayerStyle, ViewerState
from pe_viewer.theme import dark_palette
from pe_viewer.worker import ModelsInfo


def _volume(z: int = 5) -> Volume:
    return Volume(np.zeros((z, 8, 8), np.int16), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))


def _result(
    z: int,
    p: float | None,
    triage: dict[str, float] | None = None,
    scores: dict[str, float] | None = None,
    triage_class: str | None = None,
) -> SliceResult:
    return SliceResult(
        z, p, triage, np.zeros((0, 5)), None, CropBox(0, 8, 0, 8), scores or {}, triage_class
    )


def test_state_clamps_slices_and_forgets_results_of_the_previous_study(qtbot) -> None:
    state = ViewerState()
    with qtbot.waitSignal(state.slice_changed) as blocker:
        state.set_volume(_volume())
    assert blocker.args == [2]
    state.set_slice(99)
    assert state.z == 4
    state.set_slice(-3)
    assert state.z == 0
    with qtbot.waitSignal(state.results_added) as blocker:
        state.add_results([_result(1, 0.9), _result(3, None)])
    assert blocker.args == [(1, 3)]
    np.testing.assert_array_equal(state.pe_probabilities(), [np.nan, 0.9, np.nan, np.nan, np.nan])
    state.set_cam(target="classification")
    state.add_heatmap(HeatmapKey(0, "classification", "gradcam"), np.ones((8, 8)))
    assert state.heatmap_key() in state.heatmaps
    state.set_volume(_volume(3))
    assert state.results == {}
    assert state.heatmaps == {}
    assert state.z == 1


def test_state_clamps_window_and_opacity(qtbot) -> None:
    state = ViewerState()
    state.set_levels(100, 50)
    assert state.levels == (100.0, 101.0)
    with qtbot.waitSignal(state.layer_changed) as blocker:
        state.set_style("mask", opacity=3.0)
    assert blocker.args == ["mask"]
    assert state.styles["mask"].opacity == 1.0


def test_the_box_score_cut_filters_what_is_drawn_and_counted(qtbot) -> None:
    state = ViewerState()
    boxes = np.array([[0, 0, 4, 4, 0.3], [2, 2, 6, 6, 0.5], [1, 1, 3, 3, 0.97]])
    result = SliceResult(0, 0.9, None, boxes, None, CropBox(0, 8, 0, 8))
    assert state.shown_boxes(result)[:, 4].tolist() == [0.5, 0.97]  # the default cut, 0.5
    with qtbot.waitSignal(state.layer_changed) as blocker:
        state.set_min_box_score(0.9)
    assert blocker.args == ["boxes"]
    assert state.shown_boxes(result)[:, 4].tolist() == [0.97]
    state.set_min_box_score(-1)
    assert len(state.shown_boxes(result)) == 3
    with pytest.raises(ValueError, match="number"):
        state.set_min_box_score(float("nan"))


def test_bounding_patch_holds_every_nonzero_pixel() -> None:
    image = np.zeros((10, 12), np.uint8)
    image[2, 3] = image[6, 9] = 1
    y0, x0, patch = bounding_patch(image)
    assert (y0, x0, patch.shape) == (2, 3, (5, 7))
    assert patch.sum() == 2
    assert bounding_patch(np.zeros((4, 4))) is None


def test_patches_colour_masks_and_heatmaps(qtbot) -> None:
    mask = np.zeros((16, 16), np.uint8)
    mask[4:6, 5:9] = 1
    patch = mask_patch(mask)
    assert (patch.y0, patch.x0) == (4, 5)
    assert (patch.pixmap.width(), patch.pixmap.height()) == (4, 2)
    assert mask_patch(np.zeros((4, 4), np.uint8)) is None
    heatmap = np.zeros((16, 16), np.float32)
    heatmap[8, 8] = 1.0
    heatmap[8, 9] = 0.1
    hot = heatmap_patch(heatmap, heatmap_lut()).pixmap.toImage()
    assert hot.pixelColor(0, 0).alpha() == 255  # the strongest evidence is opaque
    assert hot.pixelColor(1, 0).alpha() < 60  # weak evidence fades out


@pytest.mark.parametrize(
    ("result", "source", "expected"),
    [
        (
            _result(0, 0.7, {"normal": 0.1, "other_disease": 0.2, "pe": 0.7}, None, "pe"),
            "triage",
            "PE (P(PE) 70%)",
        ),
        (  # the pipeline's class at stage 1's cut, though "other disease" is the likelier
            _result(0, 0.05, {"normal": 0.15, "other_disease": 0.8, "pe": 0.05}, None, "normal"),
            "triage",
            "Normal (P(PE) 5%)",
        ),
        (_result(0, 0.93, None), "segmentation", "PE 93% (segmentation)"),
        (
            _result(0, 0.93, None, {"segmentation": 0.93, "classification": 0.41}),
            "segmentation",
            "PE 93% (segmentation) · classification 41%",
        ),
        (
            _result(
                0,
                0.93,
                {"normal": 0.2, "other_disease": 0.7, "pe": 0.1},
                {"classification": 0.2, "triage": 0.1, "segmentation": 0.93},
                "other_disease",
            ),
            "segmentation",
            "PE 93% (segmentation) · classification 20% · triage Other disease (P(PE) 10%)",
        ),
        (_result(0, None, None), None, None),
        (None, None, None),
    ],
)
def test_triage_badge_text(result, source, expected) -> None:
    text = triage_text(result, source, threshold=0.5)
    assert (text[0] if text else None) == expected


@pytest.mark.parametrize(("width", "moved"), [(1600, False), (500, True)])
def test_the_badge_keeps_clear_of_the_study_text(qtbot, width: int, moved: bool) -> None:
    graphics = pg.GraphicsLayoutWidget()
    qtbot.addWidget(graphics)
    view = graphics.addViewBox()
    graphics.resize(width, 400)
    graphics.show()
    qtbot.waitExposed(graphics)
    image = pg.ImageItem()
    view.addItem(image)
    overlays = SliceOverlays(image, view)
    info = TextItem(view)
    info.setPos(4, 4)
    info.set_text("SYNTHETIC CTPA PHANTOM seed 2 (pe)\nslice 106/244\nW 700  L 100", "#ffffff")
    study_text = info.mapRectToParent(info.boundingRect())
    badge = "PE 100% (segmentation) · classification 80% · triage PE (P(PE) 86%)"
    overlays.show_badge((badge, "#c0392b"), LayerStyle(True, 1.0), clear_of=study_text)
    placed = overlays.badge.mapRectToParent(overlays.badge.boundingRect())
    assert not placed.intersects(study_text)
    assert placed.right() == pytest.approx(view.boundingRect().width() - 6)
    assert (placed.top() > study_text.bottom()) == moved


def test_a_slice_score_badge_is_red_only_at_or_above_the_threshold() -> None:
    above = triage_text(_result(0, 0.6, None), "segmentation", threshold=0.6)
    below = triage_text(_result(0, 0.59, None), "segmentation", threshold=0.6)
    assert above is not None
    assert below is not None
    assert above[1] == TRIAGE_COLORS["pe"]
    assert below[1] == BELOW_THRESHOLD_COLOR


def test_text_items_sit_on_their_anchor_and_draw_their_background(qtbot) -> None:
    parent = QtWidgets.QGraphicsRectItem()
    badge = TextItem(parent, anchor=(1, 0))  # top-right corner at its position
    badge.set_text("PE 70%", "white", background="#c0392b")
    rect = badge.boundingRect()
    assert rect.right() == pytest.approx(0)
    assert rect.top() == pytest.approx(0)
    assert rect.width() > rect.height() > 0
    corner = badge.pixmap().toImage().pixelColor(0, 0)
    assert corner.name() == "#c0392b"
    label = TextItem(parent, anchor=(0, 1))
    label.set_text("0.90", "#ffd23f")
    assert label.text == "0.90"
    assert label.boundingRect().bottom() == pytest.approx(0)
    assert label.pixmap().toImage().pixelColor(0, 0).alpha() == 0  # no box behind a score


def test_positive_slices_are_the_studys_once_it_is_in(qtbot) -> None:
    state = ViewerState()
    state.set_volume(_volume())
    results = [_result(z, p) for z, p in enumerate((0.1, 0.9, 0.6, 0.95, 0.2))]
    state.add_results(results)
    assert [r.index for r in state.positive_results()] == [3, 1, 2]  # by threshold, sorted
    # a U-Net alone does not count slice 2's speck: the study says which slices count
    study = StudyResult(0.95, "pe", (1, 3), 0.5, ContrastCheck(True, 300.0), tuple(results))
    state.set_study(study)
    assert [r.index for r in state.positive_results()] == [3, 1]


def test_the_zplot_marks_counted_and_uncounted_slices_apart(qtbot) -> None:
    state = ViewerState()
    zplot = ZPlotWidget(state)
    qtbot.addWidget(zplot)
    state.set_volume(_volume())
    results = [_result(z, p) for z, p in enumerate((0.1, 0.9, 0.6, 0.95, 0.2))]
    state.add_results(results)
    assert list(zplot.counted.getData()[0]) == [1, 2, 3]  # before the study: the threshold's
    assert len(zplot.uncounted.getData()[0]) == 0
    state.set_study(
        StudyResult(0.95, "pe", (1, 3), 0.5, ContrastCheck(True, 300.0), tuple(results))
    )
    assert list(zplot.counted.getData()[0]) == [1, 3]
    assert list(zplot.counted.getData()[1]) == [0.9, 0.95]
    assert list(zplot.uncounted.getData()[0]) == [2]  # slice 2's speck is too small to count


def test_the_zplot_redraws_its_second_opinions_for_each_set_of_models(qtbot) -> None:
    state = ViewerState()
    zplot = ZPlotWidget(state)
    qtbot.addWidget(zplot)
    state.set_volume(_volume())
    scores = {"segmentation": 0.9, "classification": 0.4, "triage": 0.2}
    state.add_results([_result(z, 0.9, None, scores) for z in range(5)])
    zplot.set_second_opinions(["classification"], "segmentation")
    zplot.set_second_opinions(["classification", "triage"], "segmentation")  # other models
    assert list(zplot.second_curves) == ["classification", "triage"]
    assert [label.text for _, label in zplot.legend.items] == [
        "segmentation (slice score)",
        "classification",
        "triage",
    ]
    assert list(zplot.second_curves["triage"].getData()[1]) == [0.2] * 5
    # the slice score's curve, its two sets of dots and two second opinions; none left over
    assert len(zplot.listDataItems()) == 5
    zplot.set_second_opinions([], "segmentation")
    assert not zplot.second_curves
    assert len(zplot.listDataItems()) == 3
    assert not zplot.legend.items
    assert not zplot.legend.isVisible()


def test_layers_no_loaded_model_can_draw_are_greyed_out(qtbot) -> None:
    panel = LayerPanel(ViewerState())
    qtbot.addWidget(panel)
    unet = BundleConfig("unet", {}, "segmentation", ("vascular",))
    panel.set_models(ModelsInfo("CPU", {"segmentation": unet}, {}, 0.5, "segmentation"))
    assert panel.visible["mask"].isEnabled()
    assert not panel.visible["boxes"].isEnabled()
    assert not panel.opacity["boxes"].isEnabled()
    assert not panel.min_box_score.isEnabled()
    assert "No detection or integrated model" in panel.visible["boxes"].toolTip()
    assert panel.visible["triage"].isEnabled()  # the badge also shows a U-Net's slice score
    detector = BundleConfig("detector", {}, "detection", ("vascular",))
    both = {"segmentation": unet, "detection": detector}
    panel.set_models(ModelsInfo("CPU", both, {}, 0.5, "segmentation"))
    assert panel.visible["boxes"].isEnabled()
    assert panel.visible["boxes"].toolTip() == ""
    assert panel.min_box_score.isEnabled()
    panel.set_models(None)
    assert not panel.visible["mask"].isEnabled()


def test_findings_give_the_triage_rule_only_with_triage(qtbot) -> None:
    panel = FindingsPanel(ViewerState())
    qtbot.addWidget(panel)
    unet = BundleConfig("unet", {}, "segmentation", ("vascular",))
    panel.set_models(ModelsInfo("CPU", {"segmentation": unet}, {}, 0.5, "segmentation"))
    assert "Triage:" not in panel.cards.toPlainText()
    with_triage = ModelsInfo(
        "CPU", {"segmentation": unet}, {}, 0.5, "segmentation", triage_cuts=(0.92, 0.86)
    )
    panel.set_models(with_triage)
    text = panel.cards.toPlainText()
    assert "Triage: PE at P(PE) ≥ 0.86, else other disease at stage 1 ≥ 0.92, else normal" in text
    assert "a study is diseased" not in text  # any one slice: seed 2's rule
    panel.set_models(replace(with_triage, min_disease_mm=10.0))
    assert "a study is diseased for a run of ≥ 10 mm of such slices" in panel.cards.toPlainText()


def test_layers_box_score_cut_shows_the_whole_range_the_state_takes(qtbot) -> None:
    state = ViewerState()
    panel = LayerPanel(state)
    qtbot.addWidget(panel)
    state.set_min_box_score(0.0)  # every box a user's detector keeps, even below 0.05
    panel.sync()
    assert panel.min_box_score.value() == 0.0
    panel.min_box_score.setValue(1.0)
    assert state.min_box_score == 1.0


def _blue_pixels(widget: QtWidgets.QWidget) -> int:
    """Pixels of ``widget`` with clearly more blue than red (the Highlight's hue)."""
    image = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), -1)
    rgb = rows[:, : 3 * image.width()].reshape(image.height(), image.width(), 3).astype(int)
    return int((rgb[..., 2] - rgb[..., 0] > 40).sum())


def test_a_disabled_slider_loses_the_highlight_blue(qtbot) -> None:
    slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
    qtbot.addWidget(slider)
    slider.setStyle(QtWidgets.QStyleFactory.create("Fusion"))
    slider.setPalette(dark_palette())
    slider.setRange(0, 100)
    slider.setValue(80)
    slider.resize(200, 24)
    assert _blue_pixels(slider) > 50  # the filled groove
    slider.setEnabled(False)
    assert _blue_pixels(slider) == 0


def test_positive_slices_shown_at_the_same_probability_run_along_z(qtbot) -> None:
    state = ViewerState()
    state.set_volume(_volume())
    probabilities = (0.1, 0.9991, 0.9999, 0.9995, 0.6)  # all but the last read "1.00"
    state.add_results([_result(z, p) for z, p in enumerate(probabilities)])
    assert [r.index for r in state.positive_results()] == [1, 2, 3, 4]


def test_a_detector_bundles_box_score_cut_applies_until_the_user_chooses_one(qtbot) -> None:
    state = ViewerState()
    panel = LayerPanel(state)
    qtbot.addWidget(panel)
    state.offer_min_box_score(0.9)
    assert state.min_box_score == 0.9
    panel.min_box_score.setValue(0.7)  # the user's choice
    assert state.min_box_score == 0.7
    state.offer_min_box_score(0.9)  # e.g. the models load again for the next study
    assert state.min_box_score == 0.7
