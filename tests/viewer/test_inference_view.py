"""Models in the viewer: background results, findings, z-plot, overlays, Grad-CAM, cancelling."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore

from pe_models import io
from pe_models.bundle import BundleConfig, save_bundle
from pe_models.inference import Pipeline
from pe_models.nets import build
from pe_models.study_checks import ContrastCheck, assess
from pe_viewer.main_window import MainWindow
from tests.model_bundles import make_bundles, make_oracle_bundles, reconfigure_bundles
from tests.viewer.conftest import LOAD_TIMEOUT_MS, MODELS_TIMEOUT_MS, _make_window


def _open_and_run(qtbot, window: MainWindow, path: Path) -> object:
    with qtbot.waitSignal(window.study_ready, timeout=MODELS_TIMEOUT_MS) as blocker:
        window.open_path(path)
    return blocker.args[0]


def _slow_down_batches(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make every batch take ``seconds`` longer, so a test can act while the models run."""
    run_slices = Pipeline.run_slices

    def slowly(self, *args, **kwargs):
        time.sleep(seconds)
        return run_slices(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "run_slices", slowly)


def test_the_worker_fills_the_findings(qtbot, oracle_window, phantom_study) -> None:
    study = _open_and_run(qtbot, oracle_window, phantom_study)
    state = oracle_window.state
    n = state.volume.shape[0]
    assert sorted(state.results) == list(range(n))
    assert state.study is study
    findings = oracle_window.findings
    rows = findings.slices.topLevelItemCount()
    assert rows == len(study.positive_slices) > 0
    scores = [float(findings.slices.topLevelItem(i).text(2)) for i in range(rows)]
    assert scores == sorted(scores, reverse=True)
    assert "PE" in findings.decision.text()
    assert f"{study.clot_volume_ml:.2f} mL" in findings.summary.text()
    assert "Oracle segmentation" in findings.cards.toPlainText()
    assert oracle_window.device_label.text() == "models on CPU"
    probabilities = oracle_window.zplot.curve.getData()[1]
    assert np.isfinite(probabilities).all()
    assert len(probabilities) == n
    assert not oracle_window.zplot.second_curves  # one model scores slices: one curve
    assert findings.slices.columnCount() == 4  # and no second-opinion column


def test_a_classifier_beside_the_unet_is_a_second_opinion_on_the_badge(
    qtbot, monkeypatch, oracle_folder: Path, settings, phantom_study, tmp_path: Path
) -> None:
    classifier = save_bundle(
        build("classifier", backbone="resnet10t", in_chans=1),
        BundleConfig(
            "classifier",
            {"backbone": "resnet10t", "in_chans": 1},
            "classification",
            ("vascular",),
            input_size=96,
            scores_slices=False,
        ),
        "# Untrained classifier\n",
        tmp_path / "classification",
    )
    bundles = [oracle_folder / "segmentation", oracle_folder / "detection", classifier]
    window = _make_window(
        qtbot, monkeypatch, lambda: Pipeline.from_bundles(bundles, batch_size=4), settings
    )
    study = _open_and_run(qtbot, window, phantom_study)
    state = window.state
    # The U-Net still scores the slices and decides; the classifier's score rides along.
    for result in state.results.values():
        assert result.pe_probability == result.model_scores["segmentation"]
    z = study.positive_slices[0]
    state.set_slice(z)
    classifier_score = state.results[z].model_scores["classification"]
    assert window.slice_view.overlays.badge.text == (
        f"PE {state.results[z].pe_probability:.0%} (segmentation) · "
        f"classification {classifier_score:.0%}"
    )
    cards = window.findings.cards.toPlainText()
    assert "Slice PE score: U-Net's highest pixel probability" in cards
    assert "Second opinion (on the badge): slice classifier" in cards
    # The list of positive slices gives the classifier's score beside the U-Net's.
    slices = window.findings.slices
    assert slices.headerItem().text(4) == "Classifier"
    for row in range(slices.topLevelItemCount()):
        item = slices.topLevelItem(row)
        result = state.results[int(item.text(0)) - 1]
        assert item.text(4) == f"{result.model_scores['classification']:.2f}"
    assert window.layers.cam_target.currentText() == "classification"
    # The z-plot draws the classifier's scores as a thin second curve beside the U-Net's.
    (second,) = window.zplot.second_curves.items()
    assert second[0] == "classification"
    np.testing.assert_allclose(
        second[1].getData()[1],
        [state.results[z].model_scores["classification"] for z in range(len(state.results))],
    )
    np.testing.assert_allclose(window.zplot.curve.getData()[1], state.pe_probabilities())


def test_results_arrive_nearest_the_current_slice_first(
    qtbot, oracle_window, phantom_study
) -> None:
    batches: list[list[int]] = []
    oracle_window.worker.results.connect(lambda r, _d, _t: batches.append([x.index for x in r]))
    _open_and_run(qtbot, oracle_window, phantom_study)
    middle = oracle_window.state.volume.shape[0] // 2
    assert batches[0] == [middle - 2, middle - 1, middle, middle + 1]  # batch of 4 around z


def test_clicking_the_zplot_and_a_positive_slice_jump_there(
    qtbot, oracle_window, phantom_study
) -> None:
    _open_and_run(qtbot, oracle_window, phantom_study)
    zplot = oracle_window.zplot
    scene_point = zplot.getPlotItem().vb.mapViewToScene(QtCore.QPointF(10, 0.5))
    qtbot.mouseClick(
        zplot.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=zplot.mapFromScene(scene_point)
    )
    assert oracle_window.state.z == 10
    assert zplot.marker.value() == 10

    slices = oracle_window.findings.slices
    item = slices.topLevelItem(slices.topLevelItemCount() - 1)
    slices.itemClicked.emit(item, 0)
    assert oracle_window.state.z == int(item.text(0)) - 1


def test_overlays_show_the_current_slice_and_follow_the_layer_panel(
    qtbot, oracle_window, phantom_study
) -> None:
    study = _open_and_run(qtbot, oracle_window, phantom_study)
    z = study.positive_slices[0]
    oracle_window.state.set_slice(z)
    overlays = oracle_window.slice_view.overlays
    result = oracle_window.state.results[z]
    assert overlays.mask.isVisible()
    rows, columns = np.nonzero(result.mask)
    assert (overlays.mask.pos().x(), overlays.mask.pos().y()) == (columns.min(), rows.min())
    image = overlays.mask.pixmap().toImage()
    assert (image.width(), image.height()) == (np.ptp(columns) + 1, np.ptp(rows) + 1)
    red = sum(
        image.pixelColor(x, y).alpha() > 0
        for x in range(image.width())
        for y in range(image.height())
    )
    assert red == result.mask.sum()  # the patch holds the whole mask, nothing else
    assert overlays.boxes.isVisible()
    assert overlays._labels[0].text == "0.90"
    assert overlays.badge.isVisible()

    layers = oracle_window.layers
    layers.visible["mask"].setChecked(False)
    assert not overlays.mask.isVisible()
    layers.visible["mask"].setChecked(True)
    layers.opacity["mask"].setValue(20)
    assert overlays.mask.opacity() == pytest.approx(0.2)
    layers.visible["boxes"].setChecked(False)
    assert not overlays.boxes.isVisible()
    assert not overlays._labels[0].isVisible()

    layers.visible["boxes"].setChecked(True)
    findings = oracle_window.findings.slices
    counts = [findings.topLevelItem(i).text(3) for i in range(findings.topLevelItemCount())]
    assert "0" not in counts
    layers.min_box_score.setValue(0.95)  # above the oracle's 0.90: nothing drawn or counted
    assert not overlays.boxes.isVisible()
    assert not overlays._labels[0].isVisible()
    counts = [findings.topLevelItem(i).text(3) for i in range(findings.topLevelItemCount())]
    assert set(counts) == {"0"}
    layers.min_box_score.setValue(0.85)
    assert overlays.boxes.isVisible()
    assert overlays._labels[0].text == "0.90"


def test_a_detectors_own_box_score_cut_applies_until_the_user_sets_one(
    qtbot, monkeypatch, settings, phantom_study, tmp_path
) -> None:
    bundles = make_oracle_bundles(tmp_path / "bundles")
    # Above the oracle's 0.90.
    reconfigure_bundles(tmp_path / "bundles", {"detection": {"threshold": 0.95}})
    factory = lambda: Pipeline.from_bundles(bundles, batch_size=4)  # noqa: E731
    window = _make_window(qtbot, monkeypatch, factory, settings)
    study = _open_and_run(qtbot, window, phantom_study)
    window.state.set_slice(study.positive_slices[0])  # a slice with oracle boxes
    assert window.state.min_box_score == 0.95
    assert window.layers.min_box_score.value() == 0.95
    assert not window.slice_view.overlays.boxes.isVisible()
    window.layers.visible["mask"].setChecked(False)  # another layer's change saves its style
    assert settings.value("min_box_score") is None  # but no cut: the user chose none

    window.layers.min_box_score.setValue(0.85)
    window.close()
    settings.sync()
    again = _make_window(qtbot, monkeypatch, factory, settings)
    again.state.set_slice(_open_and_run(qtbot, again, phantom_study).positive_slices[0])
    assert again.state.min_box_score == pytest.approx(0.85)  # the user's cut wins
    assert again.slice_view.overlays.boxes.isVisible()


def test_what_the_model_saw(qtbot, oracle_window, phantom_study) -> None:
    _open_and_run(qtbot, oracle_window, phantom_study)
    oracle_window.layers.visible["model_view"].setChecked(True)
    panel = oracle_window.model_view
    qtbot.waitUntil(lambda: panel.view is not None, timeout=5_000)
    assert oracle_window.docks["model_view"].isVisible()
    assert panel.view.channels.shape == (1, 96, 96)  # the oracle's one vascular window at 96 px
    crop = oracle_window.state.results[oracle_window.state.z].crop
    assert panel.view.crop == crop
    assert oracle_window.slice_view.overlays.crop.isVisible()


def test_next_and_previous_finding_keys(qtbot, oracle_window, phantom_study) -> None:
    study = _open_and_run(qtbot, oracle_window, phantom_study)
    oracle_window.state.set_slice(0)
    oracle_window.jump_to_finding(+1)
    positive = sorted(study.positive_slices)
    assert oracle_window.state.z == next(p for p in positive if p > 0)
    oracle_window.state.set_slice(positive[-1])
    oracle_window.jump_to_finding(+1)
    assert oracle_window.state.z == positive[-1]  # nothing further: stays
    oracle_window.jump_to_finding(-1)
    assert oracle_window.state.z == positive[-2]


def test_reopening_cancels_the_running_job(
    qtbot, oracle_window, phantom_study, tmp_path, monkeypatch
) -> None:
    from tests.dicom_factory import ramp_volume, write_series

    _slow_down_batches(monkeypatch, 0.2)
    write_series(tmp_path / "other", ramp_volume((6, 64, 64)), description="OTHER")
    first_batch = []
    oracle_window.worker.results.connect(lambda r, _d, _t: first_batch.append(r))
    with qtbot.waitSignal(oracle_window.worker.results, timeout=MODELS_TIMEOUT_MS):
        oracle_window.open_path(phantom_study)
    ready: list[object] = []
    oracle_window.study_ready.connect(ready.append)
    with qtbot.waitSignal(oracle_window.study_ready, timeout=MODELS_TIMEOUT_MS):
        oracle_window.open_path(tmp_path / "other")
    oracle_window.worker.wait()
    qtbot.wait(50)
    assert len(ready) == 1
    assert len(ready[0].slices) == 6  # the second study's answer only
    assert sorted(oracle_window.state.results) == list(range(6))
    assert oracle_window.state.volume.meta.description == "OTHER"


def test_model_errors_are_shown_and_the_viewer_stays_usable(qtbot, window, phantom_study) -> None:
    with qtbot.waitSignal(window.inference_failed, timeout=LOAD_TIMEOUT_MS) as blocker:
        window.open_path(phantom_study)
    assert "no model bundles installed" in blocker.args[0]
    assert "no model bundles installed" in window.findings.cards.toPlainText()
    assert window.device_label.text() == "models: unavailable"
    assert window.shown_errors == []  # a status message, not a modal dialog
    window.slice_view.setFocus()
    before = window.state.z
    qtbot.keyClick(window.slice_view, QtCore.Qt.Key.Key_Up)
    assert window.state.z == before + 1


@pytest.fixture(scope="module")
def classifier_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    paths = make_bundles(tmp_path_factory.mktemp("random"))
    return next(p for p in paths if p.name == "classification")


def test_grad_cam_is_computed_on_demand_for_the_current_slice(
    qtbot, monkeypatch, settings, classifier_bundle, phantom_study
) -> None:
    window = _make_window(
        qtbot,
        monkeypatch,
        lambda: Pipeline.from_bundles([classifier_bundle], batch_size=8),
        settings,
    )
    with qtbot.waitSignal(window.worker.ready, timeout=MODELS_TIMEOUT_MS):
        window.open_path(phantom_study)
    assert window.layers.cam_target.currentText() == "classification"
    with qtbot.waitSignal(window.state.heatmap_added, timeout=MODELS_TIMEOUT_MS) as blocker:
        window.layers.visible["heatmap"].setChecked(True)
    key = blocker.args[0]
    assert (key.z, key.target, key.method) == (window.state.z, "classification", "gradcam")
    heatmap = window.state.heatmaps[key]
    assert heatmap.shape == window.state.volume.shape[1:]
    assert heatmap.max() > 0
    assert window.slice_view.overlays.heatmap.isVisible()
    with qtbot.waitSignal(window.state.heatmap_added, timeout=MODELS_TIMEOUT_MS) as blocker:
        window.layers.cam_method.setCurrentText("eigencam")
    assert blocker.args[0].method == "eigencam"
    window.worker.wait()


def test_a_model_grad_cam_cannot_explain_is_reported_once(
    qtbot, oracle_window, phantom_study
) -> None:
    _open_and_run(qtbot, oracle_window, phantom_study)
    failures: list[str] = []
    oracle_window.worker.heatmap_failed.connect(lambda _key, message: failures.append(message))
    with qtbot.waitSignal(oracle_window.worker.heatmap_failed, timeout=MODELS_TIMEOUT_MS):
        oracle_window.layers.visible["heatmap"].setChecked(True)
    assert "Grad-CAM of segmentation" in failures[0]
    assert "Grad-CAM of segmentation" in oracle_window.statusBar().currentMessage()
    oracle_window.request_heatmap()  # the same slice again: not retried
    oracle_window.worker.wait()
    qtbot.wait(50)
    assert len(failures) == 1


def test_a_study_without_contrast_is_not_assessable_for_pe(qtbot, oracle_window, tmp_path) -> None:
    from pe_models.synth.phantom import generate_phantom
    from pe_models.synth.writers import write_study

    write_study(generate_phantom(4, "pe", "test", contrast=False), tmp_path / "plain")
    findings = oracle_window.findings
    on_first_results: list[tuple[str, bool]] = []
    oracle_window.worker.results.connect(
        lambda *_: on_first_results.append((findings.decision.text(), findings.warning.isVisible()))
    )
    study = _open_and_run(qtbot, oracle_window, tmp_path / "plain" / "dicom")
    assert not study.contrast.adequate
    assert study.triage != "pe"
    # The reader is told before the first slice result arrives, not once every slice is done.
    assert on_first_results[0] == ("PE not assessable: no arterial contrast", True)
    assert findings.decision.text() == "PE not assessable: no arterial contrast"
    assert "no pulmonary arterial contrast" in findings.warning.text()
    assert findings.warning.isVisible()

    # Without contrast every artery looks like a filling defect: mask, boxes and badge are hidden
    # (the user's own layer styles stay as they were) until the reader ticks them again.
    state, layers = oracle_window.state, oracle_window.layers
    overlays = oracle_window.slice_view.overlays
    state.set_slice(next(z for z, r in state.results.items() if r.mask is not None))
    assert state.withheld == {"mask", "boxes", "triage"}
    assert state.styles["mask"].visible
    assert not layers.visible["mask"].isChecked()
    assert not overlays.mask.isVisible()
    assert not overlays.boxes.isVisible()
    assert not overlays.badge.isVisible()
    assert "Hidden on this series" in findings.summary.text()
    assert "positive slices" not in findings.summary.text()
    assert "not findings" in findings.slices_label.text()
    assert oracle_window.zplot.curve.opts["pen"].color().name() == "#9a9a9a"  # grey, not red
    layers.visible["mask"].setChecked(True)
    assert overlays.mask.isVisible()
    assert not overlays.boxes.isVisible()
    assert state.withheld == {"boxes", "triage"}


def test_layers_hidden_on_a_study_without_contrast_come_back_on_the_next(
    qtbot, oracle_window, phantom_study
) -> None:
    state = oracle_window.state
    plain = replace(assess(io.load(phantom_study)), contrast=ContrastCheck(False, 40.0))
    state.set_assessment(plain)  # as a plain scan opened before would have left it
    assert state.withheld == {"mask", "boxes", "triage"}
    study = _open_and_run(qtbot, oracle_window, phantom_study)
    assert study.contrast.adequate
    assert not state.withheld
    state.set_slice(study.positive_slices[0])
    assert oracle_window.slice_view.overlays.mask.isVisible()
    assert oracle_window.layers.visible["boxes"].isChecked()
    assert "Hidden" not in oracle_window.findings.summary.text()
    assert oracle_window.findings.slices_label.text() == "Positive slices"
    assert oracle_window.zplot.curve.opts["pen"].color().name() == "#ff6b5b"


def test_a_bad_study_opened_meanwhile_leaves_the_models_running_on_the_shown_one(
    qtbot, oracle_window, phantom_study, tmp_path, monkeypatch
) -> None:
    _slow_down_batches(monkeypatch, 0.05)
    empty = tmp_path / "empty"
    empty.mkdir()
    with qtbot.waitSignal(oracle_window.worker.results, timeout=MODELS_TIMEOUT_MS):
        oracle_window.open_path(phantom_study)
    with qtbot.waitSignals(
        [oracle_window.load_failed, oracle_window.study_ready], timeout=MODELS_TIMEOUT_MS
    ):
        oracle_window.open_path(empty)
    assert len(oracle_window.state.results) == oracle_window.state.volume.shape[0]
    assert oracle_window.shown_errors  # the bad folder was reported
