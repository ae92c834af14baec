"""Choosing the triage cuts and study rule on validation slices (``pe-triage-cuts``).

The triage class of a slice is PE where P(PE) = stage 1 × stage 2 reaches stage 2's cut, else
normal where stage 1 stays under its cut, else other disease
(:func:`pe_models.triage.triage_classes`). The rules used for the demo triage pair:

- **stage 1's cut** (``threshold`` of ``triage_stage1``): the best slice accuracy, normal vs
  diseased, on a 0.01 grid;
- **the P(PE) cut** (``threshold`` of ``triage_stage2``): the best three-class slice accuracy
  at stage 1's cut;
- **the study rule** (``min_disease_mm``): a study without PE is called diseased when its
  longest run of consecutive slices called other than normal is at least this long along z.
  Stage 1's false calls on a normal study come alone or in short runs, a lesion spans
  several slices. Chosen halfway between the longest run of any normal study and the
  shortest run above it among the other-disease studies, at the nearest multiple of 5 mm
  between them: a margin either side, as neither run is known beyond the validation studies.

Every slice of each study must be in the table: a run counts consecutive z indices.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pe_models.metrics import binary_classification
from pe_models.triage import TRIAGE_CLASSES, longest_run, triage_classes

CUT_GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)
"""Candidate cuts on both probabilities."""
RULE_STEP_MM = 5.0
"""``min_disease_mm`` is a multiple of this where one lies between the runs it separates."""


@dataclass(frozen=True)
class ValidationSlices:
    """Per-slice truth and triage probabilities, in study then z order (n slices)."""

    study: np.ndarray
    """(n,) study names."""
    z: np.ndarray
    """(n,) slice indices."""
    spacing_mm: np.ndarray
    """(n,) slice spacing of the study along z, mm."""
    label: np.ndarray
    """(n,) truth, one of ``TRIAGE_CLASSES``."""
    p_disease: np.ndarray
    """(n,) stage 1's probability that the slice is diseased."""
    p_pe: np.ndarray
    """(n,) P(PE) = stage 1 × stage 2."""


def read_slices(paths: Sequence[Path]) -> ValidationSlices:
    """Read ``slices.csv`` of ``pe-eval`` report folders (or the files themselves).

    Raises
    ------
    ValueError
        A file is missing or unreadable, lacks a column, or has a slice without triage
        probabilities (triage bundles did not run); the message names the file.
    """
    columns: dict[str, list[str]] = {
        k: [] for k in ("study", "z", "spacing_mm", "label", "p_normal", "p_pe")
    }
    for path in paths:
        file = path / "slices.csv" if path.is_dir() else path
        try:
            with file.open(newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise ValueError(f"{file}: not a readable pe-eval slices.csv ({error})") from error
        if not rows:
            raise ValueError(f"{file}: holds no slices")
        missing = [k for k in columns if k not in rows[0]]
        if missing:
            raise ValueError(f"{file}: no column {', '.join(missing)} (not a pe-eval slices.csv)")
        if any(not row["p_normal"] or not row["p_pe"] for row in rows):
            raise ValueError(
                f"{file}: slices without triage probabilities; run pe-eval with both triage bundles"
            )
        for key, values in columns.items():
            values.extend(row[key] for row in rows)
    return ValidationSlices(
        study=np.array(columns["study"]),
        z=np.array(columns["z"], dtype=int),
        spacing_mm=np.array(columns["spacing_mm"], dtype=float),
        label=np.array(columns["label"]),
        p_disease=1.0 - np.array(columns["p_normal"], dtype=float),
        p_pe=np.array(columns["p_pe"], dtype=float),
    )


@dataclass(frozen=True)
class CutChoice:
    """The chosen cuts and what they do on the validation slices."""

    disease_cut: float
    pe_cut: float
    stage1: dict[str, float | None]
    """Stage 1 alone at its cut: ``roc_auc``, ``accuracy``, ``sensitivity``, ``specificity``."""
    all_normal_accuracy: float
    """Slice accuracy of calling every slice normal: what stage 1 must beat."""
    stage2_roc_auc: float | None
    """P(PE) on the diseased slices, PE vs other disease."""
    three_class_accuracy: float
    recall: dict[str, float]
    """Per triage class, the share of its slices given that class."""


def _classes(slices: ValidationSlices, disease_cut: float, pe_cut: float) -> np.ndarray:
    """(n,) triage class of each slice at the cuts, as the app gives it."""
    return np.array(
        triage_classes(slices.p_disease, slices.p_pe, disease_cut=disease_cut, pe_cut=pe_cut)
    )


def choose_cuts(slices: ValidationSlices) -> CutChoice:
    """Stage 1's cut (best slice accuracy), then the P(PE) cut (best 3-class accuracy at it).

    Ties go to the lower cut.

    Raises
    ------
    ValueError
        The slices lack normal or diseased ones.
    """
    diseased = slices.label != "normal"
    if diseased.all() or not diseased.any():
        raise ValueError("choosing the cuts needs both normal and diseased validation slices")
    accuracy = [float(np.mean((slices.p_disease >= c) == diseased)) for c in CUT_GRID]
    disease_cut = float(CUT_GRID[int(np.argmax(accuracy))])
    three_class = [
        float(np.mean(_classes(slices, disease_cut, c) == slices.label)) for c in CUT_GRID
    ]
    pe_cut = float(CUT_GRID[int(np.argmax(three_class))])
    stage1 = binary_classification(diseased.astype(int), slices.p_disease, threshold=disease_cut)
    on_diseased = slices.label[diseased] == "pe"
    stage2_auc = (
        binary_classification(on_diseased.astype(int), slices.p_pe[diseased])["roc_auc"]
        if 0 < on_diseased.sum() < on_diseased.size
        else None
    )
    names = _classes(slices, disease_cut, pe_cut)
    recall = {
        c: float(np.mean(names[slices.label == c] == c))
        for c in TRIAGE_CLASSES
        if (slices.label == c).any()
    }
    return CutChoice(
        disease_cut=disease_cut,
        pe_cut=pe_cut,
        stage1={k: stage1[k] for k in ("roc_auc", "accuracy", "sensitivity", "specificity")},
        all_normal_accuracy=float(np.mean(~diseased)),
        stage2_roc_auc=stage2_auc,
        three_class_accuracy=max(three_class),
        recall=recall,
    )


@dataclass(frozen=True)
class StudyRun:
    """One study at the chosen cuts."""

    study: str
    truth: str
    """``pe`` when a slice holds PE, else ``other_disease`` when one holds other disease, else
    ``normal``."""
    longest_mm: float
    """Longest run of consecutive slices called other than normal, times the slice spacing
    (as :meth:`pe_models.inference.Pipeline.study_result` counts it), mm."""


def study_runs(slices: ValidationSlices, disease_cut: float, pe_cut: float) -> list[StudyRun]:
    """Each study's truth and longest not-normal run at the cuts, in table order."""
    names = _classes(slices, disease_cut, pe_cut)
    runs = []
    for study in dict.fromkeys(slices.study.tolist()):
        mine = slices.study == study
        labels = set(slices.label[mine].tolist())
        truth = next((c for c in ("pe", "other_disease") if c in labels), "normal")
        called = slices.z[mine][names[mine] != "normal"]
        runs.append(
            StudyRun(study, truth, longest_run(called.tolist()) * float(slices.spacing_mm[mine][0]))
        )
    return runs


def choose_min_disease_mm(runs: Sequence[StudyRun]) -> float | None:
    """Halfway between the longest normal run and the next other-disease run.

    The rule calls a study diseased when its run is at least ``min_disease_mm``: the value
    must lie above every normal study's run and at most the other-disease run. Of the
    multiples of ``RULE_STEP_MM`` there, the one nearest halfway; with none, halfway itself.

    Returns
    -------
    float or None
        None when no study is normal or no other-disease study runs longer than every normal
        one (no rule then separates them).
    """
    normal = [r.longest_mm for r in runs if r.truth == "normal"]
    if not normal:
        return None
    ceiling = max(normal)
    above = [r.longest_mm for r in runs if r.truth == "other_disease" and r.longest_mm > ceiling]
    if not above:
        return None
    halfway = (ceiling + min(above)) / 2
    steps = np.arange(math.floor(ceiling / RULE_STEP_MM) + 1, min(above) // RULE_STEP_MM + 1)
    if not steps.size:
        return round(halfway, 1)
    return float(min(steps * RULE_STEP_MM, key=lambda mm: abs(mm - halfway)))


def choice_markdown(
    slices: ValidationSlices, choice: CutChoice, runs: Sequence[StudyRun], min_mm: float | None
) -> str:
    """The chosen cuts, their validation numbers and the study runs, as markdown."""
    counts = {c: int(np.sum(slices.label == c)) for c in TRIAGE_CLASSES}
    stage1 = choice.stage1

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        f"{slices.label.size} validation slices of {len(runs)} studies "
        f"({', '.join(f'{n} {c}' for c, n in counts.items())}).",
        "",
        "| | value |",
        "|---|---|",
        f"| stage 1 ROC-AUC | {number(stage1['roc_auc'])} |",
        f"| stage 1 cut (`triage_stage1` threshold) | {choice.disease_cut:.2f} |",
        f"| stage 1 accuracy (sensitivity / specificity) | {number(stage1['accuracy'])} "
        f"({number(stage1['sensitivity'])} / {number(stage1['specificity'])}) |",
        f"| accuracy calling every slice normal | {choice.all_normal_accuracy:.3f} |",
        f"| P(PE) ROC-AUC on diseased slices, PE vs other | {number(choice.stage2_roc_auc)} |",
        f"| P(PE) cut (`triage_stage2` threshold) | {choice.pe_cut:.2f} |",
        f"| 3-class accuracy | {choice.three_class_accuracy:.3f} |",
        "| recall per class | "
        + ", ".join(f"{c} {r:.3f}" for c, r in choice.recall.items())
        + " |",
        "",
        "| study | truth | longest run called not normal (mm) |",
        "|---|---|---|",
        *(f"| {r.study} | {r.truth} | {r.longest_mm:.1f} |" for r in runs),
        "",
    ]
    if min_mm is None:
        lines.append(
            "No min_disease_mm chosen: no normal study, or no other-disease study runs longer "
            "than every normal one."
        )
    else:
        found = [r for r in runs if r.truth == "other_disease"]
        kept = sum(r.longest_mm >= min_mm - 1e-6 for r in found)
        normal = max(r.longest_mm for r in runs if r.truth == "normal")
        lines.append(
            f"Chosen: min_disease_mm {min_mm:g} (the longest normal run is {normal:.1f} mm; "
            f"{kept} of {len(found)} other-disease studies run at least that long)."
        )
    return "\n".join(lines) + "\n"
