from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pe_models.metrics import (
    binary_classification,
    binary_curves,
    detection_metrics,
    multiclass_confusion,
    patient_level,
)
from pe_models.report import write_report
from pe_models.train.cards import held_out_section

DESCRIPTION = "synthetic phantoms, seed 7: 6 studies, 40 slices"


def _inputs() -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(0)
    y_true = np.array([0] * 20 + [1] * 20)
    y_score = np.clip(y_true * 0.4 + rng.uniform(0, 0.6, size=40), 0, 1)
    triage_true = [0, 0, 1, 1, 2, 2, 2]
    triage_pred = [0, 1, 1, 1, 2, 2, 0]
    report = {
        "title": "Test evaluation",
        "description": DESCRIPTION,
        "model": "classifier v0",
        "tasks": {
            "slice pe": {
                "metrics": binary_classification(y_true, y_score),
                "note": "threshold 0.5",
            },
            "triage": {
                "metrics": multiclass_confusion(
                    triage_true, triage_pred, ["normal", "other_disease", "pe"]
                )
            },
            "patients": {"metrics": patient_level({"a": [0.9, 0.1], "b": [0.2]}, {"a": 1, "b": 0})},
            "localiser": {
                "metrics": detection_metrics(
                    [np.array([[0, 0, 10, 10, 0.9]])], [np.array([[0, 0, 10, 10]])]
                )
            },
        },
    }
    return report, {"slice pe": binary_curves(y_true, y_score)}


def _assert_valid_nonblank_png(path: Path) -> None:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 100
    assert pixels.shape[1] > 100
    assert pixels.std() > 5  # not one flat colour
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10


def test_write_report_files(tmp_path: Path) -> None:
    report, curves = _inputs()
    out = tmp_path / "eval" / "run1"  # created on demand
    written = write_report(out, report, curves)

    expected_pngs = {
        "slice_pe_roc.png",
        "slice_pe_pr.png",
        "slice_pe_confusion.png",
        "triage_confusion.png",
        "patients_confusion.png",
    }
    assert set(written) == expected_pngs | {"report.json", "summary.md"}
    assert sorted(p.name for p in out.iterdir()) == sorted(written)  # no temp files left
    for name in expected_pngs:
        _assert_valid_nonblank_png(out / name)

    assert json.loads((out / "report.json").read_text(encoding="utf-8")) == report

    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert summary.startswith("# Test evaluation")
    assert f"Metrics computed on: {DESCRIPTION}" in summary
    linked = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", summary))
    assert linked == expected_pngs
    assert all((out / link).is_file() for link in linked)
    assert "| roc_auc |" in summary
    # per-class dicts keyed alike share one table
    assert "|  | sensitivity | sensitivity_text | precision | support |" in summary
    assert "| normal | 0.5000 | 50% (1/2) | 0.5000 | 2 |" in summary
    assert "| pred other_disease |" in summary
    assert "100% (2/2)" in summary  # patient-level accuracy text
    assert "**model**: classifier v0" in summary
    assert "## localiser" in summary
    assert "threshold 0.5" in summary


def test_rewrite_replaces_files(tmp_path: Path) -> None:
    report, curves = _inputs()
    write_report(tmp_path, report, curves)
    report["description"] = "second run"
    write_report(tmp_path, report, {})
    assert json.loads((tmp_path / "report.json").read_text())["description"] == "second run"
    assert "Metrics computed on: second run" in (tmp_path / "summary.md").read_text()
    assert not list(tmp_path.glob(".*.tmp"))


def test_numpy_and_nan_values_are_json_safe(tmp_path: Path) -> None:
    report = {
        "description": "numpy values",
        "tasks": {"t": {"metrics": {"auc": np.float32(0.5), "n": np.int64(3), "x": float("nan")}}},
    }
    write_report(tmp_path, report)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["tasks"]["t"]["metrics"] == {"auc": 0.5, "n": 3, "x": None}


@pytest.mark.parametrize(
    ("report", "curves", "message"),
    [
        ({"tasks": {"t": {"metrics": {}}}}, None, "description"),
        ({"description": "d", "tasks": {}}, None, "tasks"),
        ({"description": "d", "tasks": {"t": {}}}, None, "metrics"),
        ({"description": "d", "tasks": {"t": {"metrics": {}}}}, {"u": {}}, "unknown tasks"),
    ],
)
def test_invalid_report(tmp_path: Path, report: dict, curves: dict | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_report(tmp_path, report, curves)
    assert not list(tmp_path.iterdir())


def test_the_slice_scorer_card_gets_the_slice_and_patient_results() -> None:
    tasks = {
        "slice_pe": {"metrics": {"roc_auc": 0.87}, "note": "U-Net"},
        "patient_pe_decision": {"metrics": {"specificity_text": "0% (0/9)"}, "note": ""},
        "segmentation_pe_slices": {"metrics": {"iou_micro": 0.73}, "note": ""},
        "segmentation_clot_pieces": {
            "metrics": {"piece_recall": {"0-5 mm²": 0.0, "> 150 mm²": None}},
            "note": "",
        },
    }
    as_scorer = held_out_section("segmentation", tasks, "phantoms", "pe-eval", "segmentation")
    assert "roc_auc 0.8700" in as_scorer
    assert "specificity_text 0% (0/9)" in as_scorer
    assert "iou_micro 0.7300" in as_scorer
    assert "piece_recall (0-5 mm² 0.0000; > 150 mm² –)" in as_scorer
    beside_a_classifier = held_out_section(
        "segmentation", tasks, "phantoms", "pe-eval", "classification"
    )
    assert "slice_pe" not in beside_a_classifier
    assert "iou_micro 0.7300" in beside_a_classifier
    # A classifier beside the U-Net (scores_slices: false) is described by its own score only.
    tasks["slice_pe_classification"] = {"metrics": {"roc_auc": 0.91}, "note": "second opinion"}
    second_opinion = held_out_section(
        "classification", tasks, "phantoms", "pe-eval", "segmentation"
    )
    assert "**slice_pe_classification** (second opinion): roc_auc 0.9100" in second_opinion
    assert "**slice_pe**" not in second_opinion
    assert "specificity_text" not in second_opinion


def test_a_list_of_rows_becomes_a_table(tmp_path: Path) -> None:
    report, curves = _inputs()
    report["studies"] = [
        {"study": "phantom-09000-other", "decision": "normal", "warnings": []},
        {"study": "phantom-09001-pe", "decision": "pe", "clot_volume_ml": 10.44},
    ]
    write_report(tmp_path, report, curves)
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "## studies" in summary
    assert "| study | decision | warnings | clot_volume_ml |" in summary
    assert "| phantom-09001-pe | pe | – | 10.4400 |" in summary
    assert "**studies**" not in summary  # not also as one long line
