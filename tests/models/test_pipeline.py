"""The inference Pipeline on phantoms: results in original pixels, order, cancel, contrast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pe_models.bundle import BundleConfig, load_bundle, save_bundle
from pe_models.clots import clot_components, components_on_truth
from pe_models.inference import (
    InferenceCancelled,
    Pipeline,
    SliceResult,
    _masks_to_original,
    model_view,
)
from pe_models.nets import build
from pe_models.preprocess.lung_crop import CropBox, lung_air_mask
from pe_models.study_checks import contrast_check
from pe_models.synth.phantom import Phantom, generate_phantom
from pe_models.volume import Volume
from tests.model_bundles import make_bundles, make_oracle_bundles, reconfigure_bundles


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return Pipeline.from_bundles(make_bundles(tmp_path_factory.mktemp("bundles")), batch_size=6)


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    return generate_phantom(4, "pe", "test")


def test_every_task_gives_results_in_original_pixels(pipeline: Pipeline, phantom: Phantom) -> None:
    volume = phantom.volume
    study = pipeline.run(volume, slices=range(20, 30))
    assert set(pipeline.tasks) == {
        "classification",
        "segmentation",
        "detection",
        "triage_stage1",
        "triage_stage2",
    }
    assert [r.index for r in study.slices] == list(range(20, 30))
    for result in study.slices:
        assert 0.0 <= result.pe_probability <= 1.0
        assert result.pe_probability == result.model_scores["classification"]
        assert set(result.model_scores) == {"classification", "triage", "segmentation"}
        assert sum(result.triage.values()) == pytest.approx(1.0)
        assert result.mask.shape == volume.shape[1:]
        assert result.mask.dtype == np.uint8
        assert result.boxes.ndim == 2
        assert result.boxes.shape[1] == 5
        assert result.crop.method == "dynamic"
    assert study.triage in ("pe", "other_disease", "normal")
    assert 0.0 <= study.pe_probability <= 1.0
    assert study.clot_volume_ml is not None
    assert study.contrast.adequate


def test_selected_tasks_only(pipeline: Pipeline, phantom: Phantom) -> None:
    study = pipeline.run(phantom.volume, slices=[24], tasks=["segmentation"])
    result = study.slices[0]
    assert result.mask is not None
    assert pipeline.slice_score_source(["segmentation"]) == "segmentation"
    assert 0.0 <= result.pe_probability <= 1.0  # the segmenter's highest pixel probability
    assert result.triage is None
    assert result.boxes.shape == (0, 5)
    assert pipeline.slice_score_source(["detection"]) is None
    assert (
        pipeline.run(phantom.volume, slices=[24], tasks=["detection"]).slices[0].pe_probability
        is None
    )
    assert pipeline.slice_score_source() == "classification"
    assert pipeline.device_name == "CPU"
    with pytest.raises(KeyError, match="no model for"):
        pipeline.run(phantom.volume, slices=[24], tasks=["lungmask"])


def _reconfigured(folder: Path, changes: dict[str, dict]) -> Pipeline:
    """The pipeline of the bundles in ``folder``, after merging ``changes`` (by task) into
    their config.json."""
    reconfigure_bundles(folder, changes)
    return Pipeline.from_bundles(sorted(p for p in folder.iterdir() if p.is_dir()))


def test_a_bundle_that_does_not_score_slices_gives_a_second_opinion(
    tmp_path: Path, phantom: Phantom
) -> None:
    make_bundles(tmp_path)
    second = {"scores_slices": False, "threshold": 0.9}
    pipeline = _reconfigured(tmp_path, {"classification": second, "triage_stage2": second})
    assert pipeline.slice_score_source() == "segmentation"
    assert pipeline.other_slice_scores() == ["classification", "triage"]
    assert pipeline.threshold() == 0.5  # the U-Net's, not the classifier's 0.9
    # Without a model that scores slices, the one present still does, at its own threshold.
    assert pipeline.slice_score_source(["classification", "detection"]) == "classification"
    assert pipeline.threshold(["classification"]) == 0.9
    assert pipeline.threshold(["triage_stage1", "triage_stage2"]) == 0.9

    result = pipeline.run(phantom.volume, slices=[24]).slices[0]
    assert set(result.model_scores) == {"classification", "triage", "segmentation"}
    assert result.pe_probability == result.model_scores["segmentation"]
    assert result.model_scores["triage"] == pytest.approx(result.triage["pe"])
    assert result.model_scores["classification"] != result.pe_probability


def test_triage_classes_are_decided_at_the_bundles_cuts(tmp_path: Path, phantom: Phantom) -> None:
    make_bundles(tmp_path)
    tasks = ["triage_stage1", "triage_stage2"]
    slices = range(18, 30)
    first = _reconfigured(tmp_path, {})
    assert first.triage_cuts() == (0.5, 0.5)
    results = first.run(phantom.volume, slices=slices, tasks=tasks).slices
    p_disease = np.array([1 - r.triage["normal"] for r in results])
    middle = float(np.median(p_disease))

    cuts = {"triage_stage1": {"threshold": middle}, "triage_stage2": {"threshold": 0.999999}}
    pipeline = _reconfigured(tmp_path, cuts)
    assert pipeline.triage_cuts() == (middle, 0.999999)
    study = pipeline.run(phantom.volume, slices=slices, tasks=tasks)
    classes = [r.triage_class for r in study.slices]
    assert classes == ["normal" if p < middle else "other_disease" for p in p_disease]
    assert {"normal", "other_disease"} <= set(classes)
    assert study.positive_slices == ()
    assert study.triage == "other_disease"

    pipeline = _reconfigured(tmp_path, {"triage_stage1": {"threshold": 0.999999}})
    study = pipeline.run(phantom.volume, slices=slices, tasks=tasks)
    assert {r.triage_class for r in study.slices} == {"normal"}
    assert study.triage == "normal"


def _classed(z: int, triage_class: str) -> SliceResult:
    triage = {"normal": 0.5, "other_disease": 0.4, "pe": 0.1}
    scores = {"classification": 0.1, "triage": 0.1}
    return SliceResult(z, 0.1, triage, np.zeros((0, 5)), None, None, scores, triage_class)


def test_a_study_is_diseased_only_for_a_run_as_long_as_stage_1_asks(
    tmp_path: Path, phantom: Phantom
) -> None:
    make_bundles(tmp_path)
    volume = phantom.volume
    classes = ["normal"] * 12
    classes[2] = classes[5] = "other_disease"  # two lone calls
    lone = [_classed(z, c) for z, c in enumerate(classes)]
    classes[8:11] = ["other_disease", "pe", "other_disease"]  # three slices in a row
    run = [_classed(z, c) for z, c in enumerate(classes)]

    any_slice = _reconfigured(tmp_path, {})
    assert any_slice.min_disease_mm() is None  # seed 2's rule: one slice is enough
    assert any_slice.summarise(volume, lone).triage == "other_disease"

    three_slices_mm = 3 * volume.spacing[0]
    rule = {"extra": {"min_disease_mm": three_slices_mm}}
    strict = _reconfigured(tmp_path, {"triage_stage1": rule})
    assert strict.min_disease_mm() == pytest.approx(three_slices_mm)
    assert strict.summarise(volume, lone).triage == "normal"
    assert strict.summarise(volume, run).triage == "other_disease"
    assert strict.summarise(volume, [_classed(z, "normal") for z in range(12)]).triage == "normal"


def test_runs_outward_from_the_priority_slice(pipeline: Pipeline, phantom: Phantom) -> None:
    order: list[int] = []
    pipeline.run(
        phantom.volume,
        slices=range(10, 20),
        priority=14,
        progress=lambda d, t, r: order.append(r.index),
    )
    assert order == [14, 13, 15, 12, 16, 11, 17, 10, 18, 19]


def test_cancel_stops_between_batches(pipeline: Pipeline, phantom: Phantom) -> None:
    done: list[int] = []
    with pytest.raises(InferenceCancelled):
        pipeline.run(
            phantom.volume,
            progress=lambda d, t, r: done.append(d),
            should_cancel=lambda: bool(done),
        )
    assert len(done) == pipeline.batch_size


def test_results_are_deterministic(pipeline: Pipeline, phantom: Phantom) -> None:
    first = pipeline.run(phantom.volume, slices=[24])
    second = pipeline.run(phantom.volume, slices=[24])
    assert first.slices[0].pe_probability == second.slices[0].pe_probability
    np.testing.assert_array_equal(first.slices[0].boxes, second.slices[0].boxes)


def _bright_square_volume() -> Volume:
    """A phantom whose only voxels above 100 HU (the vascular window's middle) form a square."""
    base = generate_phantom(6, "normal", "test", contrast=False).volume
    hu = base.hu.copy()
    hu[hu > 90] = 40  # nothing else above the middle of the vascular window
    hu[:, 50:62, 30:44] = 300
    return Volume(hu, base.spacing, base.origin, base.direction)


def test_masks_and_boxes_map_back_through_crop_and_resize(tmp_path: Path) -> None:
    windows = ("vascular",)
    bundles = [
        save_bundle(
            build("test_bright_segmenter"),
            BundleConfig("test_bright_segmenter", {}, "segmentation", windows, input_size=96),
            "oracle",
            tmp_path / "seg",
        ),
        save_bundle(
            build("test_bright_detector"),
            BundleConfig("test_bright_detector", {}, "detection", windows, input_size=96),
            "oracle",
            tmp_path / "det",
        ),
    ]
    volume = _bright_square_volume()
    z = 24
    result = Pipeline.from_bundles(bundles).run(volume, slices=[z]).slices[0]
    crop = result.crop
    assert crop.method == "dynamic"
    assert (crop.y0, crop.x0) != (0, 0)  # a real crop, not the whole slice
    truth = volume.hu[z] > 100  # what the oracles see above 0.5 in the vascular window
    overlap = (result.mask.astype(bool) & truth).sum() / (result.mask.astype(bool) | truth).sum()
    assert overlap > 0.85
    rows, columns = np.nonzero(truth)
    x0, y0, x1, y1, score = result.boxes[0]
    assert (x0, y0, x1, y1) == pytest.approx(
        (columns.min(), rows.min(), columns.max() + 1, rows.max() + 1), abs=1.5
    )
    assert score == pytest.approx(0.9)
    assert result.pe_probability == pytest.approx(1.0)  # a segmenter alone scores slices


def test_segmenter_slice_score_is_low_without_anything_to_segment(tmp_path: Path) -> None:
    config = BundleConfig("test_bright_segmenter", {}, "segmentation", ("vascular",), input_size=96)
    bundle = save_bundle(build("test_bright_segmenter"), config, "oracle", tmp_path / "seg")
    volume = _bright_square_volume()
    hu = volume.hu.copy()
    hu[:, 50:62, 30:44] = 40
    plain = Volume(hu, volume.spacing, volume.origin, volume.direction)
    result = Pipeline.from_bundles([bundle]).run(plain, slices=[24]).slices[0]
    assert result.pe_probability < 0.5  # the brightest pixel sits below the oracle's 0.5 cut


def test_non_contrast_study_is_flagged_and_not_called_pe(pipeline: Pipeline) -> None:
    plain = generate_phantom(4, "pe", "test", contrast=False)
    check = contrast_check(plain.volume)
    assert not check.adequate
    assert check.p90_hu < 150
    assert contrast_check(generate_phantom(4, "pe", "test").volume).adequate
    study = pipeline.run(plain.volume, slices=range(20, 26))
    assert study.triage != "pe"
    assert study.not_assessable == "no arterial contrast"
    assert any("no pulmonary arterial contrast" in w for w in study.warnings)


def test_a_series_below_the_lungs_is_not_assessable(tmp_path: Path, phantom: Phantom) -> None:
    segmenter = make_oracle_bundles(tmp_path)[0]  # contrast-filled vessels score 1: "PE"
    volume = phantom.volume
    lungs = np.array([lung_air_mask(s, volume.spacing[1:]).sum() for s in volume.hu])
    below = np.flatnonzero(lungs == 0)
    below = below[below < volume.shape[0] // 2][:6]  # the upper abdomen, 6 × 6.5 mm
    abdomen = Volume(volume.hu[below], volume.spacing, volume.origin, volume.direction)
    study = Pipeline.from_bundles([segmenter]).run(abdomen)
    assert study.positive_slices  # the oracle still marks the aorta
    assert study.triage != "pe"
    assert study.not_assessable == "little lung in the series"
    assert any("little lung" in w for w in study.warnings)


def test_a_stack_too_short_to_follow_a_clot_gets_no_study_decision(
    tmp_path: Path, phantom: Phantom
) -> None:
    segmenter = make_oracle_bundles(tmp_path)[0]  # contrast-filled vessels score 1: "PE"
    oracle = Pipeline.from_bundles([segmenter])
    volume = phantom.volume  # 6.5 mm slices

    def stack(count: int) -> Volume:
        return Volume(volume.hu[24 : 24 + count], volume.spacing, volume.origin, volume.direction)

    for count in (1, 3):  # 6.5 and 19.5 mm: below MIN_DECISION_EXTENT_MM
        study = oracle.run(stack(count))
        assert len(study.positive_slices) == count  # the slice findings stand
        assert study.triage != "pe"
        assert study.not_assessable == f"{count} slice(s), too few"
        assert any("needs at least 20 mm" in w for w in study.warnings)
    study = oracle.run(stack(4))
    assert (study.triage, study.not_assessable) == ("pe", None)


def test_two_bundles_for_one_task_are_refused(tmp_path: Path) -> None:
    paths = make_bundles(tmp_path / "a")[:1] + make_bundles(tmp_path / "b")[:1]
    with pytest.raises(ValueError, match="two bundles for task 'classification'"):
        Pipeline.from_bundles(paths)


def test_load_default_without_bundles_says_how_to_make_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PE_VIEWER_RESOURCES", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pe-train --preset demo"):
        Pipeline.load_default()
    assert load_bundle(make_bundles(tmp_path / "bundles")[0]).config.task == "classification"
    assert set(Pipeline.load_default().tasks) == {
        "classification",
        "segmentation",
        "detection",
        "triage_stage1",
        "triage_stage2",
    }


def test_model_view_is_the_windowed_crop_the_model_sees(
    pipeline: Pipeline, phantom: Phantom
) -> None:
    config = pipeline.models["triage_stage1"].bundle.config
    view = model_view(phantom.volume, 24, config)
    assert view.windows == ("vascular", "lung")
    assert view.channels.shape == (2, config.input_size, config.input_size)
    assert view.channels.min() >= 0.0
    assert view.channels.max() <= 1.0
    assert view.crop == pipeline.run(phantom.volume, slices=[24]).slices[0].crop
    lung = view.channels[1]
    assert lung.std() > 0.1  # air, soft tissue and vessels: not a flat image


def _unet_alone(folder: Path, min_clot_ml: float | None) -> Pipeline:
    extra = {} if min_clot_ml is None else {"min_clot_ml": min_clot_ml}
    config = BundleConfig(
        "test_bright_segmenter", {}, "segmentation", ("vascular",), input_size=32, extra=extra
    )
    save_bundle(build("test_bright_segmenter"), config, "# oracle\n", folder)
    return Pipeline.from_bundles([folder])


def _slice(z: int, mask: np.ndarray) -> SliceResult:
    return SliceResult(z, 0.9 if mask.any() else 0.1, None, np.zeros((0, 5)), mask, None)


def test_a_unet_alone_calls_pe_only_for_a_clot_of_the_minimum_size(
    tmp_path: Path, phantom: Phantom
) -> None:
    volume = phantom.volume
    masks = np.zeros((10, *volume.shape[1:]), np.uint8)
    masks[3:7, 20:30, 20:30] = 1  # a clot through four slices
    masks[8, 5, 5] = 1  # a speck
    clot_ml = 400 * float(np.prod(volume.spacing)) / 1000
    results = [_slice(z, masks[z]) for z in range(10)]

    strict = _unet_alone(tmp_path / "strict", min_clot_ml=clot_ml / 2)
    assert strict.min_clot_ml() == pytest.approx(clot_ml / 2)
    assert strict.min_clot_ml(tasks=[]) is None  # the rule holds only while the U-Net scores
    study = strict.summarise(volume, results)
    assert study.positive_slices == (3, 4, 5, 6)  # not the speck's slice 8
    assert study.triage == "pe"
    assert study.largest_clot_ml == pytest.approx(clot_ml)
    assert study.clot_volume_ml == pytest.approx(clot_ml + clot_ml / 400)

    speck_only = [_slice(z, masks[z] if z == 8 else np.zeros_like(masks[z])) for z in range(10)]
    study = strict.summarise(volume, speck_only)
    assert study.positive_slices == ()
    assert study.triage == "normal"
    assert study.pe_probability == 0.0
    assert study.slices[8].pe_probability == 0.9  # slice scores are left as the U-Net gave them

    lenient = _unet_alone(tmp_path / "lenient", min_clot_ml=None)
    assert lenient.summarise(volume, speck_only).positive_slices == (8,)


def test_clot_components_join_neighbouring_slices_only() -> None:
    volume = Volume(np.zeros((6, 8, 8), np.int16), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:4] = 1
    volumes_ml, on_slice = clot_components(volume, [1, 2, 4], [mask, mask, mask])
    assert sorted(volumes_ml.tolist()) == pytest.approx([0.008, 0.016])  # 4 px x 2 mm^3
    assert on_slice[1] == on_slice[2] != on_slice[4]  # slice 3 was not given: no bridge
    assert clot_components(volume, [], []) == (pytest.approx(np.zeros(0)), {})


def test_components_on_truth_give_the_share_of_each_piece_on_the_clot() -> None:
    volume = Volume(np.zeros((6, 8, 8), np.int16), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:4] = 1
    mask[6:8, 6:8] = 1
    truth = np.zeros((6, 8, 8), np.uint8)
    truth[1:3, 2:4, 2:3] = 1  # half of the first piece
    volumes_ml, on_truth = components_on_truth(volume, [1, 2], [mask, mask], truth)
    expected, _ = clot_components(volume, [1, 2], [mask, mask])
    assert volumes_ml.tolist() == pytest.approx(expected.tolist())
    assert on_truth.tolist() == pytest.approx([0.5, 0.0])  # labelled in raster order
    assert components_on_truth(volume, [], [], truth)[0].size == 0


def test_a_mask_comes_back_with_its_outline_between_model_pixels() -> None:
    # A disc predicted at a quarter of the original resolution; its logits are the signed
    # distance to the edge in model pixels, as a smooth network output would be.
    crop = CropBox(y0=40, y1=240, x0=60, x1=260)  # 200 × 200 original px, model input 50²
    centre, radius = 24.7, 9.3  # model pixels
    rows, columns = np.mgrid[:50, :50]
    distance = np.hypot(rows - centre, columns - centre)
    logits = torch.from_numpy(radius - distance).float()[None, None]

    mask = _masks_to_original(logits, [crop], (300, 300))[0].astype(bool)

    # A model pixel's centre c lies at (c + 0.5) * 4 - 0.5 original pixels from the crop's edge.
    rows, columns = np.mgrid[:300, :300]
    centre_y, centre_x = 40 + (centre + 0.5) * 4 - 0.5, 60 + (centre + 0.5) * 4 - 0.5
    distance = np.hypot(rows - centre_y, columns - centre_x)
    away_from_edge = np.abs(distance - radius * 4) > 1
    assert np.array_equal(mask[away_from_edge], (distance <= radius * 4)[away_from_edge])
