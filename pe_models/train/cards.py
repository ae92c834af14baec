"""Model cards: the held-out evaluation section that ``pe-eval --update-cards`` writes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pe_models.bundle import CARD_FILE, load_bundle
from pe_models.inference import SCORE_BUNDLE
from pe_models.io.atomic import write_text_atomic

HELD_OUT_HEADING = "## Held-out evaluation"

REPORT_TASKS_OF_BUNDLE: dict[str, tuple[str, ...]] = {
    "segmentation": (
        "segmentation_pe_slices",
        "segmentation_pe_studies",
        "segmentation_clot_pieces",
    ),
    "detection": ("detection", "detection_score_cuts", "detection_by_size"),
    "triage_stage1": ("triage_stage1", "triage_three_class"),
    "triage_stage2": ("triage_stage2", "triage_three_class"),
}
"""Which report tasks describe a bundle of each task, besides its slice PE score's."""

SCORE_SOURCE_OF_BUNDLE = {task: source for source, task in SCORE_BUNDLE.items()}
"""The slice PE score (``Pipeline.slice_score_sources``) whose card a bundle of each task is."""

SLICE_SCORE_TASKS = ("slice_pe", "patient_pe_any_slice", "patient_pe_decision")
"""Report tasks that describe whichever model gives the slice PE probability."""

CARD_METRICS = (
    "roc_auc",
    "accuracy",
    "sensitivity",
    "specificity",
    "f1",
    "threshold",
    "iou_micro",
    "dice_micro",
    "iou_mean",
    "dice_mean",
    "ap50",
    "precision",
    "recall",
    "false_boxes_per_image",
    "mean_best_iou",
    "sensitivity_text",
    "specificity_text",
    "n",
    "n_positive",
    "n_slices",
    "n_studies",
    "n_true_boxes",
    "ap",
    "true_boxes",
    "piece_recall",
    "pieces",
    "pieces_out_of_view",
)
"""Scalar metrics copied into cards, when a task reports them."""


def held_out_section(
    bundle_task: str,
    tasks: Mapping[str, Any],
    description: str,
    command: str,
    score_source: str | None = None,
) -> str:
    """Markdown of the report tasks that describe a bundle of ``bundle_task``.

    ``score_source`` is the slice PE score the study decision was made with (see
    ``Pipeline.slice_score_source``): the card of the bundle giving it also gets the slice
    and patient results; a bundle whose slice score was a second opinion gets that score's
    (``slice_pe_SOURCE``).
    """
    lines = [HELD_OUT_HEADING, "", f"Data: {description}.", f"Command: `{command}`", ""]
    names = list(REPORT_TASKS_OF_BUNDLE.get(bundle_task, ()))
    own_score = SCORE_SOURCE_OF_BUNDLE.get(bundle_task)
    if own_score is not None:
        names += SLICE_SCORE_TASKS if own_score == score_source else (f"slice_pe_{own_score}",)
    for name in names:
        if name not in tasks:
            continue
        metrics = tasks[name]["metrics"]
        shown = {k: metrics[k] for k in CARD_METRICS if metrics.get(k) is not None}
        if bundle_task.startswith("triage") and "sensitivity" in metrics and name.endswith("class"):
            shown["per-class sensitivity"] = metrics["sensitivity"]
        values = ", ".join(f"{k} {_value_text(v)}" for k, v in shown.items())
        lines.append(f"- **{name}** ({tasks[name].get('note', '')}): {values}")
    return "\n".join(lines) + "\n"


def _value_text(value: Any) -> str:
    """A metric as card text; a per-class mapping as ``(class value; ...)``."""
    if isinstance(value, Mapping):
        return "(" + "; ".join(f"{k} {_value_text(v)}" for k, v in value.items()) + ")"
    if isinstance(value, float):
        return f"{value:.4f}"
    return "–" if value is None else str(value)


def update_cards(
    bundles: Sequence[Path],
    tasks: Mapping[str, Any],
    description: str,
    command: str,
    score_source: str | None = None,
) -> None:
    """Replace (or add) the held-out section of each bundle's card (see held_out_section)."""
    for folder in bundles:
        bundle = load_bundle(folder)
        card = bundle.card.split(HELD_OUT_HEADING)[0].rstrip() + "\n\n"
        section = held_out_section(bundle.config.task, tasks, description, command, score_source)
        write_text_atomic(Path(folder) / CARD_FILE, card + section)
