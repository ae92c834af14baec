"""Evaluate bundles through the Pipeline on labelled studies, as the app would run them.

Every metric is computed on the outputs the viewer and ``pe-infer`` show: the Pipeline's
slice probabilities, triage probabilities, masks and boxes in original pixels, and its study
decision (which includes the contrast check). Slice classification and triage run on every
slice (patient-level results need them all); segmentation and detection run on every PE slice
and every ``negative_stride``-th other slice (their false positives), to keep a CPU evaluation
within minutes.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np

from pe_models import io
from pe_models.clots import components_on_truth
from pe_models.data.records import NO_PE, LabelledStudy, StudyRecord
from pe_models.inference import (
    DEFAULT_BOX_SCORE_CUT,
    Pipeline,
    SliceResult,
    StudyResult,
)
from pe_models.io.atomic import write_text_atomic
from pe_models.metrics import (
    DEFAULT_BOX_SCORE_CUTS,
    binary_classification,
    binary_curves,
    boxes_by_size,
    clot_pieces_by_size,
    detection_metrics,
    detection_score_cuts,
    multiclass_confusion,
    patient_level,
    rsna_weighted_log_loss,
    segmentation_overlap,
    study_overlap,
)
from pe_models.report import write_report
from pe_models.train.cards import update_cards as write_cards
from pe_models.triage import TRIAGE_CLASSES
from pe_models.volume import Volume

PIXEL_TASKS = ("segmentation", "detection")
SCORE_NOTES = {
    "classification": "the slice classifier's probability",
    "triage": "triage P(PE) = P(diseased) x P(PE | diseased)",
    "integrated": "the integrated model's classification head",
    "segmentation": "the U-Net's highest pixel probability",
}
"""What the slice PE probability is, by :meth:`Pipeline.slice_score_source`."""
ON_CLOT_SHARE = 0.3
"""A predicted clot component lies on the true clot when more than this share of it does."""

log = logging.getLogger(__name__)


@dataclass
class Collected:
    """Per-slice outputs and truths gathered over studies, in study then z order."""

    patient_pe: dict[str, int] = field(default_factory=dict)
    patient_decision: dict[str, float] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    slice_study: list[str] = field(default_factory=list)
    slice_patient: list[str] = field(default_factory=list)
    slice_z: list[int] = field(default_factory=list)
    slice_position_mm: list[float] = field(default_factory=list)
    slice_spacing_mm: list[float] = field(default_factory=list)
    """Per slice: its study's spacing along z (the Pipeline's study rule counts runs in it)."""
    pe_score: list[float] = field(default_factory=list)
    other_scores: dict[str, list[float]] = field(default_factory=dict)
    """Slice PE scores of the models beside the one giving ``pe_score`` (second opinions), by
    source, when they ran on every slice."""
    triage: list[list[float]] = field(default_factory=list)
    triage_classes: list[str | None] = field(default_factory=list)
    """The pipeline's triage class of each slice (at the bundles' cuts), None without triage."""
    pred_masks: list[np.ndarray] = field(default_factory=list)
    true_masks: list[np.ndarray] = field(default_factory=list)
    mask_pixel_mm2: list[float] = field(default_factory=list)
    mask_views: list[tuple[int, int, int, int]] = field(default_factory=list)
    study_voxels: list[tuple[int, int, int]] = field(default_factory=list)
    """Per study with PE, U-Net (tp, fp, fn) voxels over every slice it ran on."""
    pred_boxes: list[np.ndarray] = field(default_factory=list)
    true_boxes: list[np.ndarray] = field(default_factory=list)
    box_pixel_mm2: list[float] = field(default_factory=list)
    studies: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def pixel_slices(labels: Sequence[str], negative_stride: int) -> list[int]:
    """Slices for segmentation / detection: every PE slice, every n-th other slice."""
    return [
        z for z, label in enumerate(labels) if label == "pe" or z % max(1, negative_stride) == 0
    ]


def study_summary(name: str, volume: Volume, result: StudyResult) -> dict[str, Any]:
    """What the app says about a study, as one JSON-ready row.

    ``decision`` is ``not assessable`` when the study gets none (``not_assessable`` says why),
    not the ``normal`` that :class:`StudyResult` keeps in its fixed ``triage`` field. With
    triage, ``triage_slices`` counts the slices of each triage class.
    """
    row: dict[str, Any] = {
        "study": name,
        "slices": volume.shape[0],
        "pe_probability": round(result.pe_probability, 4),
        "decision": "not assessable" if result.not_assessable else result.triage,
        "positive_slices": len(result.positive_slices),
        "contrast_adequate": result.contrast.adequate,
        "contrast_p90_hu": round(result.contrast.p90_hu, 1),
        "clot_volume_ml": _rounded(result.clot_volume_ml, 2),
        # What min_clot_ml is compared with; specks matter, so 3 places.
        "largest_clot_ml": _rounded(result.largest_clot_ml, 3),
        "not_assessable": result.not_assessable,
        "warnings": list(result.warnings),
    }
    classes = [r.triage_class for r in result.slices if r.triage_class is not None]
    if classes:
        row["triage_slices"] = {c: classes.count(c) for c in TRIAGE_CLASSES}
    return row


def labelled_summary(name: str, study: LabelledStudy, result: StudyResult) -> dict[str, Any]:
    """:func:`study_summary` with the truth beside it.

    Adds ``pe_present``, ``true_clot_ml`` (None without a PE mask) and
    ``largest_on_clot_ml``: the largest predicted clot component of which more than
    :data:`ON_CLOT_SHARE` lies on the true clot (None: none does), which tells a study found
    on its clot from one found only through a false piece.
    """
    row = study_summary(name, study.volume, result)
    row["pe_present"] = study.pe_present
    has_mask = study.pe_mask is not None
    row["true_clot_ml"] = _rounded(true_clot_ml(study), 3) if has_mask else None
    row["largest_on_clot_ml"] = _rounded(_largest_on_clot_ml(study, result), 3)
    return row


def _rounded(value: float | None, places: int) -> float | None:
    return None if value is None else round(value, places)


def _largest_on_clot_ml(study: LabelledStudy, result: StudyResult) -> float | None:
    """Largest predicted component with enough of it on the true clot, in mL; None if none."""
    masked = [(r.index, r.mask) for r in result.slices if r.mask is not None]
    if study.pe_mask is None or not study.pe_mask.any() or not masked:
        return None
    volumes_ml, on_truth = components_on_truth(
        study.volume, [z for z, _ in masked], [mask for _, mask in masked], study.pe_mask
    )
    on_clot = volumes_ml[on_truth > ON_CLOT_SHARE]
    return float(on_clot.max()) if on_clot.size else None


def true_clot_ml(study: LabelledStudy) -> float:
    """Volume of the study's true PE mask in mL (0 without one)."""
    if study.pe_mask is None:
        return 0.0
    return float(study.pe_mask.astype(bool).sum()) * study.volume.voxel_ml


def collect(
    pipeline: Pipeline,
    records: Sequence[StudyRecord],
    *,
    negative_stride: int = 10,
    small_clots_ml: float | None = None,
    masks_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Collected:
    """Run the pipeline on every study and gather outputs with their truths.

    The model that gives the slice PE probability runs on every slice, even a segmenter (a
    U-Net-only pipeline scores slices by its masks); other pixel tasks run on the slices of
    :func:`pixel_slices`. With ``small_clots_ml`` only studies with PE whose true clot totals
    less than that many mL are evaluated (the hard cases for a study rule such as
    ``min_clot_ml``); the others are listed in ``skipped``. With ``masks_dir`` each study's
    U-Net mask is written there beside its truth (:func:`write_mask_comparison`): of every
    slice when the U-Net scores the slices, else of the slices of :func:`pixel_slices`.
    """
    score_source = pipeline.slice_score_source()
    every_slice = [t for t in pipeline.tasks if t not in PIXEL_TASKS or t == score_source]
    sampled = [t for t in pipeline.tasks if t not in every_slice]
    others = pipeline.other_slice_scores(every_slice)
    out = Collected()
    for record in records:
        study = record.load()
        volume = study.volume
        if study.slice_labels is None:
            raise ValueError(f"{record.study_id}: evaluation needs per-slice labels")
        if small_clots_ml is not None and not 0 < (clot_ml := true_clot_ml(study)) < small_clots_ml:
            log.info("skipped %s: %.2f mL of true clot", record.study_id, clot_ml)
            out.skipped.append(record.study_id)
            continue
        labels = study.slice_labels
        runs: list[StudyResult] = []
        if every_slice:
            result = pipeline.run(volume, tasks=every_slice)
            runs.append(result)
            out.studies.append(labelled_summary(record.study_id, study, result))
            out.patient_pe[record.patient_id] = int("pe" in labels)
            out.patient_decision[record.patient_id] = float(result.triage == "pe")
            positions_mm = volume.slice_positions_mm()
            for r in result.slices:
                out.labels.append(labels[r.index])
                out.slice_study.append(record.study_id)
                out.slice_patient.append(record.patient_id)
                out.slice_z.append(r.index)
                out.slice_position_mm.append(float(positions_mm[r.index]))
                out.slice_spacing_mm.append(float(volume.spacing[0]))
                out.pe_score.append(np.nan if r.pe_probability is None else r.pe_probability)
                for source in others:
                    out.other_scores.setdefault(source, []).append(r.model_scores[source])
                out.triage.append(
                    [r.triage[c] for c in TRIAGE_CLASSES] if r.triage else [np.nan] * 3
                )
                out.triage_classes.append(r.triage_class)
            _collect_pixels(out, study, result.slices, detection=False)
        if sampled:
            chosen = pixel_slices(labels, negative_stride)
            pixels = pipeline.run(volume, slices=chosen, tasks=sampled)
            runs.append(pixels)
            _collect_pixels(out, study, pixels.slices, detection="detection" in sampled)
        if masks_dir is not None:
            with_masks = (run for run in runs if any(r.mask is not None for r in run.slices))
            if (masked := next(with_masks, None)) is not None:
                write_mask_comparison(study, masked, masks_dir / f"{record.file_stem}.nii.gz")
        if progress:
            progress(record.study_id)
    return out


SLICES_FILE = "slices.csv"
"""Per-slice outputs of an evaluation, beside its report (:func:`write_slices`)."""


def write_slices(collected: Collected, path: Path) -> Path:
    """Write one row per slice run on every slice: truth, scores and triage, atomically.

    Columns: ``study``, ``patient``, ``z`` (array index), ``position_mm`` (slice position
    along z), ``spacing_mm`` (slice spacing along z), ``label`` (the slice's truth),
    ``pe_score`` (the slice PE probability), ``<source>_score`` for each second opinion,
    ``p_normal``, ``p_other_disease``, ``p_pe`` (triage) and ``triage_class`` (at the
    bundles' cuts); empty where a model did not run. A researcher sorts it for the failure
    slices; ``pe-triage-cuts`` chooses triage cuts from it.
    """
    sources = sorted(collected.other_scores)
    header = [
        "study",
        "patient",
        "z",
        "position_mm",
        "spacing_mm",
        "label",
        "pe_score",
        *(f"{source}_score" for source in sources),
        *(f"p_{name}" for name in TRIAGE_CLASSES),
        "triage_class",
    ]
    text = StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)

    def number(value: float) -> str:
        return "" if np.isnan(value) else f"{value:.6g}"

    for k, label in enumerate(collected.labels):
        writer.writerow(
            [
                collected.slice_study[k],
                collected.slice_patient[k],
                collected.slice_z[k],
                f"{collected.slice_position_mm[k]:.3f}",
                f"{collected.slice_spacing_mm[k]:.4g}",
                label,
                number(collected.pe_score[k]),
                *(number(collected.other_scores[source][k]) for source in sources),
                *(number(p) for p in collected.triage[k]),
                collected.triage_classes[k] or "",
            ]
        )
    return write_text_atomic(path, text.getvalue())


PREDICTED_ONLY, TRUE_ONLY, BOTH = 1, 2, 3
"""Labels of a mask comparison: predicted, missed, and found clot voxels."""


def write_mask_comparison(study: LabelledStudy, result: StudyResult, path: Path) -> Path:
    """Write the predicted and true PE masks of a study as one label image.

    Voxels are :data:`PREDICTED_ONLY` (1, a false clot voxel), :data:`TRUE_ONLY` (2, missed)
    or :data:`BOTH` (3, found), 0 elsewhere, in the study's geometry (a .nii.gz label map
    opens over the study in ITK-SNAP or 3D Slicer): failures to inspect, and the masks to try
    a study rule on without running the models again.

    Slices of ``result`` without a mask (the U-Net did not run there) hold only the truth.

    Returns
    -------
    Path
        The written file.
    """
    labels = np.zeros(study.volume.shape, dtype=np.uint8)
    for r in result.slices:
        if r.mask is not None:
            labels[r.index] = (r.mask > 0) * PREDICTED_ONLY
    if study.pe_mask is not None:
        labels |= (study.pe_mask > 0).astype(np.uint8) * TRUE_ONLY
    path.parent.mkdir(parents=True, exist_ok=True)
    return io.write_image(labels, study.volume, path)


def _collect_pixels(
    out: Collected, study: LabelledStudy, results: Sequence[SliceResult], *, detection: bool
) -> None:
    """Masks of PE slices and, with ``detection``, boxes of every slice, with their truths.

    In a study with PE, the voxels of the U-Net's mask on every slice it ran on are counted too
    (``Collected.study_voxels``).
    """
    labels = study.slice_labels or ()
    if study.pe_mask is not None and study.pe_mask.any():
        masked = [r for r in results if r.mask is not None]
        if masked:
            out.study_voxels.append(_voxel_counts(study.pe_mask, masked))
    for r in results:
        if r.mask is not None and study.pe_mask is not None and labels[r.index] == "pe":
            out.pred_masks.append(r.mask)
            out.true_masks.append(study.pe_mask[r.index])
            out.mask_pixel_mm2.append(float(np.prod(study.volume.spacing[1:])))
            out.mask_views.append((r.crop.y0, r.crop.y1, r.crop.x0, r.crop.x1))
        if detection and study.boxes is not None:
            out.pred_boxes.append(r.boxes)
            out.true_boxes.append(np.asarray(study.boxes[r.index], float).reshape(-1, 4))
            out.box_pixel_mm2.append(float(np.prod(study.volume.spacing[1:])))


def _voxel_counts(truth: np.ndarray, results: Sequence[SliceResult]) -> tuple[int, int, int]:
    """(tp, fp, fn) voxels of the slices' masks against the (z, y, x) true mask."""
    tp = fp = fn = 0
    for r in results:
        pred = np.asarray(r.mask) != 0
        true = truth[r.index] != 0
        hits = int(np.count_nonzero(pred & true))
        tp += hits
        fp += int(np.count_nonzero(pred)) - hits
        fn += int(np.count_nonzero(true)) - hits
    return tp, fp, fn


def _binary_task(
    truth: np.ndarray, score: np.ndarray, threshold: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    return binary_classification(truth, score, threshold=threshold), binary_curves(truth, score)


def metrics_of(collected: Collected, pipeline: Pipeline) -> tuple[dict[str, Any], dict[str, Any]]:
    """Report tasks and curves (see :func:`pe_models.report.write_report`)."""
    tasks: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    labels = np.asarray(collected.labels)
    threshold = pipeline.threshold()
    source = pipeline.slice_score_source()
    if source is not None and collected.pe_score:
        truth = (labels == "pe").astype(int)
        score = np.asarray(collected.pe_score)
        metrics, curves["slice_pe"] = _binary_task(truth, score, threshold)
        tasks["slice_pe"] = {"metrics": metrics, "note": f"{SCORE_NOTES[source]}, every slice"}
        scores_by_patient = {
            p: score[np.asarray(collected.slice_patient) == p] for p in collected.patient_pe
        }
        tasks["patient_pe_any_slice"] = {
            "metrics": patient_level(scores_by_patient, collected.patient_pe, threshold=threshold),
            "note": "seed 2's rule: a patient is positive when any slice is",
        }
        tasks["rsna_weighted_log_loss"] = {
            "metrics": _rsna_loss(collected, truth, score),
            "note": "negative_exam_for_pe = 1 - study PE probability; pe_present_on_image",
        }
        for other, other_score in collected.other_scores.items():
            metrics, curves[f"slice_pe_{other}"] = _binary_task(
                truth, np.asarray(other_score), pipeline.source_threshold(other)
            )
            tasks[f"slice_pe_{other}"] = {
                "metrics": metrics,
                "note": f"{SCORE_NOTES[other]}, every slice: a second opinion, not the decision",
            }
    if pipeline.has_triage():
        tasks.update(_triage_tasks(collected, labels, curves, pipeline.triage_cuts()))
    if collected.patient_pe:
        decisions = {p: [collected.patient_decision[p]] for p in collected.patient_pe}
        tasks["patient_pe_decision"] = {
            "metrics": patient_level(decisions, collected.patient_pe, threshold=0.5),
            "note": "the app's study decision (threshold, contrast check, min_clot_ml)",
        }
    if collected.true_masks:
        tasks["segmentation_pe_slices"] = {
            "metrics": segmentation_overlap(collected.pred_masks, collected.true_masks),
            "note": "U-Net masks in original pixels on slices with PE",
        }
        tasks["segmentation_pe_studies"] = {
            "metrics": study_overlap(collected.study_voxels),
            "note": (
                "U-Net masks in 3D over every slice it ran on in studies with PE: false "
                "pixels on slices without clot count, as they do not on PE slices alone"
            ),
        }
        tasks["segmentation_clot_pieces"] = {
            "metrics": clot_pieces_by_size(
                collected.pred_masks,
                collected.true_masks,
                collected.mask_pixel_mm2,
                collected.mask_views,
            ),
            "note": (
                "true clot pieces (2D, 8-connected) on slices with PE, found when a predicted "
                "pixel lies on them, by in-plane size; pieces mostly outside the crop the "
                "U-Net saw are counted apart"
            ),
        }
    if collected.true_boxes:
        shown_from = _shown_box_cut(pipeline)
        tasks["detection"] = {
            "metrics": detection_metrics(
                collected.pred_boxes, collected.true_boxes, score_threshold=shown_from
            ),
            "note": (
                "Faster R-CNN boxes in original pixels; PE slices and sampled others; "
                f"precision and recall of the boxes scoring ≥ {shown_from:g}, the viewer's "
                "default cut"
            ),
        }
        cuts = sorted({*DEFAULT_BOX_SCORE_CUTS, shown_from})
        cut_metrics, detection_pr = detection_score_cuts(
            collected.pred_boxes, collected.true_boxes, cuts
        )
        curves["detection"] = {"pr": detection_pr}
        tasks["detection_score_cuts"] = {
            "metrics": cut_metrics,
            "note": (
                "the same boxes at each box score cut (the viewer's 'Box score ≥'): precision, "
                "recall and false boxes per slice, IoU ≥ 0.5 to match"
            ),
        }
        tasks["detection_by_size"] = {
            "metrics": boxes_by_size(
                collected.pred_boxes, collected.true_boxes, collected.box_pixel_mm2
            ),
            "note": (
                "the same boxes, AP@0.5 and recall at any score by true box area (width x "
                "height, mm²); within a size class boxes of other sizes are ignored, as COCO "
                "does for its area ranges"
            ),
        }
    return tasks, curves


def _shown_box_cut(pipeline: Pipeline) -> float:
    """The box score from which the viewer draws boxes by default: the detector's own cut."""
    cut = pipeline.box_score_cut()
    return DEFAULT_BOX_SCORE_CUT if cut is None else cut


def _triage_tasks(
    collected: Collected,
    labels: np.ndarray,
    curves: dict[str, Any],
    cuts: tuple[float, float],
) -> dict[str, Any]:
    """Seed 2's triage metrics at the app's cuts (``Pipeline.triage_cuts``)."""
    disease_cut, pe_cut = cuts
    known = labels != NO_PE
    triage = np.asarray(collected.triage)[known]
    truth = labels[known]
    tasks: dict[str, Any] = {}
    stage1_truth = (truth != "normal").astype(int)
    metrics, curves["triage_stage1"] = _binary_task(stage1_truth, 1.0 - triage[:, 0], disease_cut)
    tasks["triage_stage1"] = {
        "metrics": metrics,
        "note": (
            f"WNL (0) vs diseased (1), every slice, stage 1 alone at its cut {disease_cut:g} "
            "(the app's class is also PE below it where P(PE) reaches stage 2's cut)"
        ),
    }
    diseased = truth != "normal"
    stage2_truth = (truth[diseased] == "pe").astype(int)
    metrics, curves["triage_stage2"] = _binary_task(stage2_truth, triage[diseased, 2], pe_cut)
    tasks["triage_stage2"] = {
        "metrics": metrics,
        "note": (
            "other disease (0) vs PE (1) on truly diseased slices: triage P(PE) (stage 1 x "
            f"stage 2) at its cut {pe_cut:g}, as the app decides"
        ),
    }
    predicted = np.asarray(collected.triage_classes, dtype=object)[known]
    if any(c is None for c in predicted):
        raise ValueError("triage ran on only some slices: no three-class table")
    tasks["triage_three_class"] = {
        "metrics": multiclass_confusion(
            [TRIAGE_CLASSES.index(t) for t in truth],
            [TRIAGE_CLASSES.index(str(c)) for c in predicted],
            list(TRIAGE_CLASSES),
        ),
        "note": "the app's triage class (both stages at their cuts), every slice",
    }
    return tasks


def _rsna_loss(collected: Collected, truth: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    patients = np.asarray(collected.slice_patient)
    order = list(collected.patient_pe)
    exam_truth = {"negative_exam_for_pe": [1 - collected.patient_pe[p] for p in order]}
    exam_pred = {"negative_exam_for_pe": [1 - float(score[patients == p].max()) for p in order]}
    return rsna_weighted_log_loss(
        exam_truth,
        exam_pred,
        [truth[patients == p] for p in order],
        [score[patients == p] for p in order],
    )


def _series_label(series: io.SeriesInfo, root: Path) -> str:
    """The series' folder (or file) under ``root``, and its description when it has one."""
    if series.headers:
        place = Path(os.path.commonpath([h.path.parent for h in series.headers]))
    else:
        place = series.path
    where = place.relative_to(root).as_posix() if place.is_relative_to(root) else str(place)
    where = root.name if where == "." else where
    return f"{where}: {series.description}" if series.description else where


def real_ct_rows(pipeline: Pipeline, folder: Path) -> list[dict[str, Any]]:
    """What the models say about every readable series under ``folder``.

    With a detector, ``boxes_shown`` and ``slices_with_boxes`` count the boxes at its box
    score cut (what the viewer draws by default). ``second_opinions`` gives, for each model
    whose slice score is a second opinion, its highest slice score and the slices at or above
    its threshold.
    """
    cut = _shown_box_cut(pipeline)
    seconds = pipeline.other_slice_scores()
    rows = []
    for series in io.scan(folder):
        try:
            volume = io.load(series.path, series.series_uid)
        except io.StudyReadError as error:
            rows.append({"study": str(series.path), "error": str(error)})
            continue
        result = pipeline.run(volume)
        row = study_summary(_series_label(series, folder), volume, result)
        row["contrast_hint"] = series.contrast_hint
        if "detection" in pipeline.models:
            shown = [len(r.boxes_scoring(cut)) for r in result.slices]
            row["boxes_shown"] = sum(shown)
            row["slices_with_boxes"] = sum(n > 0 for n in shown)
        if seconds:
            row["second_opinions"] = {
                source: _second_opinion(result, source, pipeline.source_threshold(source))
                for source in seconds
            }
        rows.append(row)
        log.info("%s", row)
    return rows


def _second_opinion(result: StudyResult, source: str, threshold: float) -> dict[str, Any]:
    """One second opinion's highest slice score and its slices at or above ``threshold``."""
    scores = [r.model_scores[source] for r in result.slices]
    return {
        "highest": round(max(scores), 4),
        "slices_over_threshold": sum(score >= threshold for score in scores),
    }


def run_evaluation(
    bundles: Sequence[Path],
    records: Sequence[StudyRecord],
    described: Sequence[str],
    out: Path,
    *,
    real: Path | None = None,
    negative_stride: int = 10,
    small_clots_ml: float | None = None,
    save_masks: bool = False,
    update_cards: bool = False,
    command: str = "",
) -> dict[str, Any]:
    """Evaluate bundles on labelled studies (and list their outputs on real CT); write a report.

    Parameters
    ----------
    bundles
        Bundle folders, at most one per task.
    records
        Labelled studies.
    described
        What the studies are, one phrase per source (goes into the report and the cards).
    out
        Report folder (see :func:`pe_models.report.write_report`), with the per-slice rows
        of the models run on every slice in ``slices.csv`` (:func:`write_slices`).
    real
        A folder of unlabelled real CT: what the models say of each series is listed.
    small_clots_ml
        Evaluate only studies with PE whose true clot totals less than this (mL).
    save_masks
        Write each study's predicted and true PE masks to ``out/masks/STUDY.nii.gz``
        (:func:`write_mask_comparison`).
    update_cards
        Write the metrics into each bundle's card.

    Returns
    -------
    dict
        The report.
    """
    pipeline = Pipeline.from_bundles(bundles)
    started = time.perf_counter()
    tasks: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    report: dict[str, Any] = {"title": "PE Viewer model evaluation", "tasks": tasks}
    described = list(described)
    evaluated = len(records)
    collected = None
    if records:
        collected = collect(
            pipeline,
            records,
            negative_stride=negative_stride,
            small_clots_ml=small_clots_ml,
            masks_dir=out / "masks" if save_masks else None,
            progress=lambda name: log.info("evaluated %s", name),
        )
        found, curves = metrics_of(collected, pipeline)
        tasks.update(found)
        report["studies"] = collected.studies
        evaluated -= len(collected.skipped)
        if small_clots_ml is not None:
            described.append(
                f"kept: studies with PE whose true clot totals under {small_clots_ml:g} mL "
                f"({evaluated} of {len(records)})"
            )
    if real is not None:
        report["real_ct"] = real_ct_rows(pipeline, real)
        described.append(f"real CT series in {real} (no labels: outputs listed)")
    report["description"] = "; ".join(described) + f"; {evaluated} labelled studies"
    report["bundles"] = [str(p) for p in bundles]
    report["command"] = command
    report["seconds"] = round(time.perf_counter() - started, 1)
    if not tasks:
        tasks["labelled studies"] = {
            "metrics": {},
            "note": "none given, so no metrics; the real-CT outputs are listed below",
        }
    write_report(out, report, curves)
    if collected is not None and collected.labels:
        write_slices(collected, out / SLICES_FILE)
    if update_cards and records:
        write_cards(bundles, tasks, report["description"], command, pipeline.slice_score_source())
    return report
