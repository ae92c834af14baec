"""``pe-eval`` end to end: tiny bundles on test-size phantoms, report files, model cards."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from pe_models.bundle import load_bundle
from pe_models.cli.evaluate import main as pe_eval
from pe_models.cli.evaluate import phantom_seeds, seeds_text
from pe_models.cli.train import main as pe_train
from pe_models.data.phantoms import phantom_records
from pe_models.evaluate import (
    BOTH,
    PREDICTED_ONLY,
    TRUE_ONLY,
    collect,
    metrics_of,
    true_clot_ml,
    write_slices,
)
from pe_models.inference import Pipeline
from pe_models.synth.phantom import generate_phantom
from pe_models.triage import TRIAGE_CLASSES
from tests.model_bundles import make_bundles, make_oracle_bundles, reconfigure_bundles


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bundles")
    make_bundles(folder, size=64)
    # Cuts far from 0.5, where the triage rule and an arg-max of the class probabilities differ.
    reconfigure_bundles(
        folder, {"triage_stage1": {"threshold": 0.9}, "triage_stage2": {"threshold": 0.2}}
    )
    return folder


@pytest.mark.slow
def test_report_has_every_task_and_cards_get_the_held_out_metrics(
    bundles: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    assert (
        pe_eval(
            [
                "--bundles", str(bundles), "--phantoms", "60:63", "--size", "test",
                "--kind", "pe", "--out", str(out), "--update-cards", "--negative-stride", "6",
                "--save-masks",
            ]
        )
        == 0
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert {
        "slice_pe",
        "patient_pe_any_slice",
        "patient_pe_decision",
        "triage_stage1",
        "triage_stage2",
        "triage_three_class",
        "segmentation_pe_slices",
        "segmentation_clot_pieces",
        "detection",
        "detection_score_cuts",
        "detection_by_size",
    } <= set(report["tasks"])
    detection = report["tasks"]["detection"]["metrics"]
    cuts = report["tasks"]["detection_score_cuts"]["metrics"]
    assert cuts["kept_boxes"]["0.50"] == detection["n_pred_kept"]  # the viewer's default cut
    assert cuts["kept_boxes"]["0.05"] == detection["n_pred_boxes"]  # torchvision keeps ≥ 0.05
    assert (out / "detection_pr.png").stat().st_size > 1000
    by_size = report["tasks"]["detection_by_size"]["metrics"]
    assert (
        sum(by_size["true_boxes"].values())
        == (report["tasks"]["detection"]["metrics"]["n_true_boxes"])
    )
    slice_pe = report["tasks"]["slice_pe"]["metrics"]
    assert slice_pe["n"] == sum(study["slices"] for study in report["studies"])
    assert 0 < slice_pe["n_positive"] < slice_pe["n"]
    assert report["tasks"]["patient_pe_any_slice"]["metrics"]["n"] == 3
    # The three-class table counts the app's triage classes, as each study row does.
    confusion = np.asarray(report["tasks"]["triage_three_class"]["metrics"]["confusion_matrix"])
    for study in report["studies"]:
        assert sum(study["triage_slices"].values()) == study["slices"]
    predicted = [
        sum(study["triage_slices"][c] for study in report["studies"]) for c in TRIAGE_CLASSES
    ]
    assert confusion.sum(axis=0).tolist() == predicted
    with (out / "slices.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == slice_pe["n"]
    assert [sum(r["triage_class"] == c for r in rows) for c in TRIAGE_CLASSES] == predicted
    first = [r for r in rows if r["study"] == report["studies"][0]["study"]]
    phantom = generate_phantom(60, "pe", "test")
    assert [r["label"] for r in first] == list(phantom.slice_labels)
    assert [int(r["z"]) for r in first] == list(range(phantom.volume.shape[0]))
    assert float(first[0]["spacing_mm"]) == pytest.approx(phantom.volume.spacing[0], rel=1e-3)
    for r in rows:
        assert sum(float(r[f"p_{c}"]) for c in TRIAGE_CLASSES) == pytest.approx(1, abs=1e-4)
    assert sorted(p.name for p in (out / "masks").iterdir()) == [
        f"phantom-000{seed}-pe.nii.gz" for seed in (60, 61, 62)
    ]
    assert report["tasks"]["segmentation_pe_slices"]["metrics"]["iou_micro"] is not None
    summary = (out / "summary.md").read_text()
    assert "seeds 60-62" in summary
    for image in re.findall(r"\]\(([^)]+\.png)\)", summary):
        assert (out / image).stat().st_size > 1000
    for folder in sorted(bundles.iterdir()):
        card = load_bundle(folder).card
        assert card.count("## Held-out evaluation") == 1
        assert "seeds 60-62" in card


def test_a_second_opinion_is_scored_beside_the_slice_score(tmp_path: Path) -> None:
    make_bundles(tmp_path, size=64)
    reconfigure_bundles(tmp_path, {"classification": {"scores_slices": False}})
    pipeline = Pipeline.from_bundles([tmp_path / "classification", tmp_path / "segmentation"])
    records = phantom_records(range(60, 62), "pe", size="test")
    collected = collect(pipeline, records, negative_stride=6)
    tasks, curves = metrics_of(collected, pipeline)
    assert "highest pixel probability" in tasks["slice_pe"]["note"]
    second = tasks["slice_pe_classification"]
    assert "second opinion" in second["note"]
    assert second["metrics"]["n"] == tasks["slice_pe"]["metrics"]["n"]  # every slice
    assert second["metrics"]["roc_auc"] != tasks["slice_pe"]["metrics"]["roc_auc"]
    assert "slice_pe_classification" in curves
    write_slices(collected, tmp_path / "slices.csv")
    with (tmp_path / "slices.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [float(r["classification_score"]) for r in rows] == pytest.approx(
        collected.other_scores["classification"], abs=1e-5
    )
    assert {r["p_pe"] for r in rows} == {""}  # no triage bundle ran


def test_saved_masks_hold_the_unet_mask_beside_the_truth(bundles: Path, tmp_path: Path) -> None:
    pipeline = Pipeline.from_bundles([bundles / "segmentation"])
    (record,) = phantom_records([60], "pe", size="test")
    (study,) = collect(pipeline, [record], masks_dir=tmp_path / "masks").studies
    saved = sitk.ReadImage(str(tmp_path / "masks" / "phantom-00060-pe.nii.gz"))
    labels = sitk.GetArrayFromImage(saved)
    phantom = generate_phantom(60, "pe", "test")
    assert labels.shape == phantom.volume.shape
    assert set(np.unique(labels).tolist()) <= {0, PREDICTED_ONLY, TRUE_ONLY, BOTH}
    np.testing.assert_array_equal(labels >= TRUE_ONLY, phantom.pe_mask > 0)
    predicted = np.isin(labels, [PREDICTED_ONLY, BOTH])
    assert predicted.any()
    voxel_ml = phantom.volume.voxel_ml
    assert abs(predicted.sum() * voxel_ml - study["clot_volume_ml"]) <= 0.005
    np.testing.assert_allclose(saved.GetSpacing(), phantom.volume.spacing[::-1])


def test_a_unet_alone_is_scored_by_what_the_app_shows(bundles: Path) -> None:
    pipeline = Pipeline.from_bundles([bundles / "segmentation"])
    records = phantom_records(range(60, 62), "pe", size="test")
    collected = collect(pipeline, records, negative_stride=6)
    tasks, curves = metrics_of(collected, pipeline)
    n_slices = sum(study["slices"] for study in collected.studies)
    assert tasks["slice_pe"]["metrics"]["n"] == n_slices  # the U-Net ran on every slice
    assert "highest pixel probability" in tasks["slice_pe"]["note"]
    assert "slice_pe" in curves
    for study in collected.studies:  # the largest 3D clot is what min_clot_ml is compared with
        assert 0 <= study["largest_clot_ml"] <= study["clot_volume_ml"] + 0.005
    # its masks are scored on every PE slice, from the same pass
    assert tasks["segmentation_pe_slices"]["metrics"]["n_slices"] == collected.labels.count("pe")
    # in 3D: the same hits and misses, and the false pixels of the slices without clot too
    on_pe_slices = tasks["segmentation_pe_slices"]["metrics"]
    in_3d = tasks["segmentation_pe_studies"]["metrics"]
    assert (in_3d["n_studies"], in_3d["tp"], in_3d["fn"]) == (
        2,
        on_pe_slices["tp"],
        on_pe_slices["fn"],
    )
    predicted_off_clot = 0
    for record in records:
        study = record.load()
        for r in pipeline.run(study.volume).slices:
            predicted_off_clot += int(
                np.count_nonzero((r.mask != 0) & (study.pe_mask[r.index] == 0))
            )
    assert in_3d["fp"] == predicted_off_clot >= on_pe_slices["fp"]
    pieces = tasks["segmentation_clot_pieces"]["metrics"]
    assert sum(pieces["pieces"].values()) + pieces["pieces_out_of_view"] > 0
    assert sum(pieces["found"].values()) <= sum(pieces["pieces"].values())


def test_study_rows_say_how_much_of_the_clot_the_unet_found(tmp_path: Path) -> None:
    # The oracle paints bright vascular pixels: the clot is dark, so its pieces lie beside it.
    oracle = Pipeline.from_bundles(make_oracle_bundles(tmp_path, size=64)[:1])
    records = phantom_records(range(60, 63), "mix", size="test")
    collected = collect(oracle, records, negative_stride=6)
    for study, record in zip(collected.studies, records, strict=True):
        truth = record.load()
        assert study["pe_present"] == truth.pe_present
        assert study["true_clot_ml"] == pytest.approx(true_clot_ml(truth), abs=1e-3)
        on_clot = study["largest_on_clot_ml"]
        assert on_clot is None or 0 < on_clot <= study["largest_clot_ml"]
        if not truth.pe_present:
            assert on_clot is None


def test_small_clots_keeps_only_pe_studies_under_the_volume(bundles: Path) -> None:
    pipeline = Pipeline.from_bundles([bundles / "segmentation"])
    records = phantom_records(range(60, 63), "pe", size="test")
    records += phantom_records([61], "mix", size="test")  # other disease: no clot
    volumes = {r.study_id: true_clot_ml(r.load()) for r in records}
    with_pe = sorted(v for v in volumes.values() if v > 0)
    assert len(with_pe) >= 2, volumes
    cut = (with_pe[0] + with_pe[1]) / 2
    collected = collect(pipeline, records, negative_stride=6, small_clots_ml=cut)
    kept = [study["study"] for study in collected.studies]
    assert kept == [name for name, v in volumes.items() if 0 < v < cut]
    assert sorted(kept + collected.skipped) == sorted(volumes)


def test_bad_bundle_folder_and_missing_data_are_reported(
    bundles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pe_eval(["--bundles", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "no bundle folders found" in capsys.readouterr().err
    assert pe_eval(["--bundles", str(bundles), "--out", str(tmp_path / "o")]) == 2
    assert "give labelled data" in capsys.readouterr().err
    one_bundle = ["--bundles", str(bundles / "segmentation"), "--out", str(tmp_path / "o")]
    assert pe_eval(one_bundle) == 2  # a bundle folder itself is accepted: only data is missing
    assert "give labelled data" in capsys.readouterr().err
    two = [*one_bundle, "--bundles", str(bundles / "detection")]
    assert pe_eval(two) == 2  # several folders are accepted together
    assert "give labelled data" in capsys.readouterr().err
    assert pe_eval([*one_bundle, "--bundles", str(bundles)]) == 2
    assert "two bundles for task 'segmentation'" in capsys.readouterr().err


def test_phantom_seeds_take_ranges_and_single_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert phantom_seeds("5000:5003") == [5000, 5001, 5002]
    assert phantom_seeds("5100, 5109,5120:5122") == [5100, 5109, 5120, 5121]
    assert seeds_text([5100, 5109, 5120, 5121, 5122]) == "5100, 5109, 5120-5122"
    out = ["--out", str(tmp_path / "o"), "--bundles", str(tmp_path)]
    for bad, message in [
        ("50:40", "range '50:40' in '50:40' is empty"),
        ("5000,x", "'x' in '5000,x' is neither a seed nor a range"),
        ("1:3,2", "names seed 2 more than once"),
    ]:
        with pytest.raises(SystemExit):
            pe_eval(["--phantoms", bad, *out])
        assert message in capsys.readouterr().err


def test_pe_train_names_the_missing_dataset_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pe_train(["--preset", "seed1", "--out", str(tmp_path)]) == 1
    assert "--root rsna=PATH" in capsys.readouterr().err
    assert pe_train(["--preset", "nonsense"]) == 2
    assert "unknown preset 'nonsense'" in capsys.readouterr().err


@pytest.mark.real_data
def test_real_series_are_named_and_the_non_contrast_one_is_not_called_pe(
    bundles: Path, real_data: Path, tmp_path: Path
) -> None:
    arguments = ["--bundles", str(bundles), "--real", str(real_data), "--out", str(tmp_path)]
    assert pe_eval(arguments) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert "the real-CT outputs are listed below" in (tmp_path / "summary.md").read_text()
    rows = {row["study"]: row for row in report["real_ct"]}
    assert len(rows) == 5  # one row per series, each named by its folder
    assert {name.split(":")[0] for name in rows} == {
        "midrc_ricord_1a_chest_24slices",
        "siemens_j2k_20slices",
        "single_slices/dicompyler_example",
        "single_slices/lungmask_tests",
        "single_slices/pydicom_CT_small",
    }
    abdomen = rows["siemens_j2k_20slices: CT Body 3.0"]
    assert (abdomen["decision"], abdomen["not_assessable"]) == (
        "not assessable",
        "little lung in the series",
    )
    row = rows["midrc_ricord_1a_chest_24slices: ROUTINE CHEST NON-CON"]
    assert 0 <= row["slices_with_boxes"] <= row["boxes_shown"]  # the bundles hold a detector
    assert row["slices_with_boxes"] <= row["slices"]
    assert row["contrast_adequate"] is False
    assert row["decision"] == "not assessable"  # neither PE nor a reassuring "normal"
    assert row["not_assessable"] == "no arterial contrast"
    assert any("no pulmonary arterial contrast" in w for w in row["warnings"])
    # The classifier gives the slice score here; what the others say is listed beside it.
    seconds = row["second_opinions"]
    assert set(seconds) == {"triage", "segmentation"}
    for opinion in seconds.values():
        assert 0 <= opinion["highest"] <= 1
        assert 0 <= opinion["slices_over_threshold"] <= row["slices"]
