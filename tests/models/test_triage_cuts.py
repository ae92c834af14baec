"""pe-triage-cuts: triage cuts and the study rule chosen on validation slices."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pe_models.cli.triage_cuts import main as pe_triage_cuts
from pe_models.triage_cuts import StudyRun, choose_min_disease_mm


def _write(path: Path, rows: list[tuple[str, int, str, float, float]]) -> Path:
    """rows: (study, z, label, P(diseased), P(PE)), 2 mm slices, in pe-eval's columns."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["study", "patient", "z", "spacing_mm", "label", "p_normal", "p_pe"])
        for study, z, label, p_disease, p_pe in rows:
            writer.writerow([study, study, z, 2.0, label, 1 - p_disease, p_pe])
    return path


def _validation_rows() -> list[tuple[str, int, str, float, float]]:
    """Three 20-slice studies whose best cuts and study rule are known by hand.

    Stage 1: cuts up to 0.30 call four faint normal slices of "normal" diseased, cuts over
    0.40 miss two faint lesion slices of "other"; the three confident false calls of "normal"
    (z 5-7) stay at any cut, so 0.31 is best. P(PE) at that cut: up to 0.30 nine "other"
    slices turn PE, over 0.50 two PE slices stop being PE; the one "other" slice at 0.6 is
    lost at every cut up to 0.60, so 0.31 is best.
    """
    rows = []
    for z in range(20):
        p = 0.95 if z in (5, 6, 7) else 0.3 if 15 <= z <= 18 else 0.1
        rows.append(("normal", z, "normal", p, 0.05 if p > 0.9 else 0.01))
    for z in range(20):
        lesion = 5 <= z <= 14
        p_disease = (0.4 if z in (5, 6) else 0.9) if lesion else 0.1
        p_pe = (0.6 if z == 14 else 0.3) if lesion else 0.01
        rows.append(("other", z, "other_disease" if lesion else "normal", p_disease, p_pe))
    for z in range(20):
        clot = 8 <= z <= 11
        p_pe = (0.7 if z < 10 else 0.5) if clot else 0.01
        rows.append(("pe", z, "pe" if clot else "normal", 0.95 if clot else 0.1, p_pe))
    return rows


def test_the_cuts_and_study_rule_are_the_best_on_the_validation_slices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "slices.csv", _validation_rows())
    assert pe_triage_cuts([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "60 validation slices of 3 studies (46 normal, 10 other_disease, 4 pe)" in printed
    assert "| stage 1 cut (`triage_stage1` threshold) | 0.31 |" in printed
    assert "| stage 1 accuracy (sensitivity / specificity) | 0.950 (1.000 / 0.935) |" in printed
    assert "| accuracy calling every slice normal | 0.767 |" in printed
    assert "| P(PE) cut (`triage_stage2` threshold) | 0.31 |" in printed
    # Errors at the cuts: the three false calls and the "other" slice at 0.6.
    assert f"| 3-class accuracy | {56 / 60:.3f} |" in printed
    assert "| normal | normal | 6.0 |" in printed  # z 5-7, 2 mm each
    assert "| other | other_disease | 20.0 |" in printed
    # Halfway between 6 and 20 mm is 13: the nearest multiple of 5 mm between them is 15.
    assert "Chosen: min_disease_mm 15 (the longest normal run is 6.0 mm; 1 of 1" in printed
    assert pe_triage_cuts([str(path), str(path)]) == 0  # several reports pool their slices
    assert "120 validation slices of 3 studies" in capsys.readouterr().out


def test_the_study_rule_needs_an_other_disease_run_longer_than_every_normal_one() -> None:
    def runs(normal_mm: float, other_mm: float) -> list[StudyRun]:
        return [StudyRun("a", "normal", normal_mm), StudyRun("b", "other_disease", other_mm)]

    assert choose_min_disease_mm(runs(21.0, 74.0)) == 45
    assert choose_min_disease_mm(runs(21.0, 24.0)) == 22.5  # no multiple of 5 mm between
    assert choose_min_disease_mm(runs(0.0, 3.0)) == 1.5
    assert choose_min_disease_mm(runs(30.0, 30.0)) is None
    assert choose_min_disease_mm([StudyRun("b", "other_disease", 30.0)]) is None


def test_slices_without_triage_or_a_missing_file_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "slices.csv"
    path.write_text("study,patient,z,spacing_mm,label,p_normal,p_pe\ns,s,0,2.0,normal,,\n")
    assert pe_triage_cuts([str(path)]) == 2
    assert f"{path}: slices without triage probabilities" in capsys.readouterr().err
    assert pe_triage_cuts([str(tmp_path / "nowhere")]) == 2
    assert "nowhere: not a readable pe-eval slices.csv" in capsys.readouterr().err
