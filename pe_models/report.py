"""Evaluation report: ``report.json``, ROC / PR / confusion-matrix PNGs and ``summary.md``.

:func:`write_report` takes a plain dict shaped like this (values are what the functions of
:mod:`pe_models.metrics` return)::

    report = {
        "title": "PE classifier, fold 0",             # optional; default "Evaluation report"
        "description": "RSNA-PE validation fold 0: 120 exams, 31 402 slices",   # required:
                                                       # the data the metrics were computed on
        "tasks": {                                     # required; task name -> task
            "slice_pe": {
                "metrics": binary_classification(...),  # required: a flat-ish dict of metrics
                "note": "threshold chosen on fold 1",   # optional line under the heading
            },
            "triage": {"metrics": multiclass_confusion(...)},
            "localiser": {"metrics": detection_metrics(...)},
        },
        "model": "classifier v3",                      # any other top-level key is kept in
    }                                                  # report.json and listed in summary.md

    curves = {"slice_pe": binary_curves(...)}  # task name -> {"roc": ..., "pr": ...} (optional)

Files written to ``folder`` (created if missing), each atomically (a temporary file in the same
folder, then ``os.replace``), summary last so its links always resolve:

- ``<task>_roc.png`` / ``<task>_pr.png`` for every task in ``curves`` having ``"roc"`` /
  ``"pr"`` (points as from :func:`pe_models.metrics.roc_curve_points` /
  :func:`~pe_models.metrics.pr_curve_points`; AUC / AP in the legend);
- ``<task>_confusion.png`` for every task whose metrics hold a ``"confusion_matrix"`` (axis
  labels from ``metrics["class_names"]``, else negative / positive);
- ``report.json``: ``report`` itself (numpy values converted, NaN/inf written as null);
- ``summary.md``: the description line, a metrics table per task (scalars; dicts keyed alike,
  such as per-class sensitivity, share one table; lists are left to report.json) and the plots
  as relative image links.

Task names become file names with characters other than letters, digits, ``-``, ``_`` and
``.`` replaced by ``_``. Plotting uses matplotlib's Agg canvas through ``Figure`` objects, never
pyplot, so no window opens and the process-wide backend is left alone.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pe_models.io.atomic import atomic_target

_SCALARS = (str, int, float, bool, type(None))
_MAX_TABLE_ROWS = 50


def write_report(
    folder: str | os.PathLike[str],
    report: Mapping[str, Any],
    curves: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write ``report.json``, the plots and ``summary.md`` into ``folder``.

    Parameters
    ----------
    folder
        Output folder; created if missing. Existing files of the same names are replaced.
    report
        ``{"description": str, "tasks": {name: {"metrics": dict, "note"?: str}}, ...}`` (see
        the module docstring).
    curves
        Optional ``{task name: {"roc"?: roc points, "pr"?: pr points}}``; names must be tasks.

    Returns
    -------
    dict[str, Path]
        File name → path of every file written, in writing order.

    Raises
    ------
    ValueError
        ``report`` lacks a description or tasks, a task lacks metrics, or ``curves`` names an
        unknown task.
    """
    tasks = _validated_tasks(report)
    curves = dict(curves or {})
    unknown = set(curves) - set(tasks)
    if unknown:
        raise ValueError(f"curves for unknown tasks {sorted(unknown)}; tasks: {sorted(tasks)}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stems = _file_stems(list(tasks))
    written: dict[str, Path] = {}
    images: dict[str, list[tuple[str, str]]] = {name: [] for name in tasks}

    def emit(file_name: str, data: bytes) -> None:
        with (
            atomic_target(out / file_name, suffix=".tmp") as temporary,
            open(temporary, "wb") as handle,
        ):
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        written[file_name] = out / file_name

    for name, task in tasks.items():
        plots = []
        task_curves = curves.get(name, {})
        if "roc" in task_curves:
            plots.append(("roc", "ROC curve", _roc_png(name, task_curves["roc"], task["metrics"])))
        if "pr" in task_curves:
            plots.append(("pr", "Precision–recall curve", _pr_png(name, task_curves["pr"])))
        if "confusion_matrix" in task["metrics"]:
            plots.append(("confusion", "Confusion matrix", _confusion_png(name, task["metrics"])))
        for kind, caption, data in plots:
            file_name = f"{stems[name]}_{kind}.png"
            emit(file_name, data)
            images[name].append((caption, file_name))
    text = json.dumps(_jsonable(report), indent=2, allow_nan=False, ensure_ascii=False)
    emit("report.json", (text + "\n").encode("utf-8"))
    emit("summary.md", _summary_markdown(report, tasks, images).encode("utf-8"))
    return written


# ----------------------------------------------------------------------------- validation & io


def _validated_tasks(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    if not isinstance(report, Mapping):
        raise ValueError(f"report must be a dict, got {type(report).__name__}")
    description = report.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ValueError('report needs a "description": the data the metrics were computed on')
    tasks = report.get("tasks")
    if not isinstance(tasks, Mapping) or not tasks:
        raise ValueError('report needs a non-empty "tasks" dict: {name: {"metrics": {...}}}')
    for name, task in tasks.items():
        if not isinstance(task, Mapping) or not isinstance(task.get("metrics"), Mapping):
            raise ValueError(f'task {name!r} needs a "metrics" dict')
    return {str(name): task for name, task in tasks.items()}


def _file_stems(names: Sequence[str]) -> dict[str, str]:
    stems: dict[str, str] = {}
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "task"
        candidate, k = stem, 2
        while candidate in stems.values():
            candidate, k = f"{stem}_{k}", k + 1
        stems[name] = candidate
    return stems


def _jsonable(value: Any) -> Any:
    """``value`` with numpy types, tuples and paths made JSON-native and NaN/inf as ``None``."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


# ----------------------------------------------------------------------------- plots


def _new_axes(size: tuple[float, float] = (5.0, 5.0)) -> tuple[Any, Any]:
    from matplotlib.figure import Figure  # lazy: metrics users need no matplotlib

    figure = Figure(figsize=size, dpi=110, layout="constrained")
    return figure, figure.add_subplot()


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _roc_png(task: str, roc: Mapping[str, Any], metrics: Mapping[str, Any]) -> bytes:
    figure, ax = _new_axes()
    auc = roc.get("auc")
    label = f"ROC (AUC = {auc:.3f})" if isinstance(auc, float | int) else "ROC"
    ax.plot(roc["fpr"], roc["tpr"], color="tab:blue", linewidth=2, label=label)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance")
    sens, spec = metrics.get("sensitivity"), metrics.get("specificity")
    if isinstance(sens, float | int) and isinstance(spec, float | int):
        threshold = metrics.get("threshold")
        at = f" at threshold {threshold:g}" if isinstance(threshold, float | int) else ""
        ax.plot([1 - spec], [sens], "o", color="tab:red", label=f"operating point{at}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), aspect="equal", title=f"{task}: ROC curve")
    ax.set_xlabel("False positive rate (1 − specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _png(figure)


def _pr_png(task: str, pr: Mapping[str, Any]) -> bytes:
    figure, ax = _new_axes()
    ap = pr.get("average_precision")
    label = f"PR (AP = {ap:.3f})" if isinstance(ap, float | int) else "PR"
    ax.step(pr["recall"], pr["precision"], where="post", color="tab:blue", linewidth=2, label=label)
    prevalence = pr.get("prevalence")
    if isinstance(prevalence, float | int):
        ax.axhline(
            prevalence,
            color="grey",
            linestyle="--",
            linewidth=1,
            label=f"chance (prevalence {prevalence:.3f})",
        )
    ax.set(xlim=(0, 1), ylim=(0, 1.02), aspect="equal", title=f"{task}: precision–recall")
    ax.set_xlabel("Recall (sensitivity)")
    ax.set_ylabel("Precision (PPV)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    return _png(figure)


def _class_names(metrics: Mapping[str, Any], size: int) -> list[str]:
    names = metrics.get("class_names")
    if isinstance(names, Sequence) and len(names) == size:
        return [str(n) for n in names]
    return ["negative", "positive"] if size == 2 else [str(k) for k in range(size)]


def _confusion_png(task: str, metrics: Mapping[str, Any]) -> bytes:
    matrix = np.asarray(metrics["confusion_matrix"], dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"task {task!r}: confusion_matrix must be square, got {matrix.shape}")
    names = _class_names(metrics, len(matrix))
    side = 3.0 + 0.9 * len(matrix)
    figure, ax = _new_axes((side + 1.0, side))
    image = ax.imshow(matrix, cmap="Blues", vmin=0)
    from matplotlib.ticker import MaxNLocator

    figure.colorbar(image, ax=ax, label="cases", ticks=MaxNLocator(integer=True))
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    for (row, col), count in np.ndenumerate(matrix):
        dark = count > matrix.max() / 2
        ax.text(
            col,
            row,
            f"{count:.0f}\n{share[row, col]:.0%}",
            ha="center",
            va="center",
            color="white" if dark else "black",
        )
    ticks = range(len(names))
    ax.set_xticks(ticks, names, rotation=30, ha="right")
    ax.set_yticks(ticks, names)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title(f"{task}: confusion matrix (row %)")
    return _png(figure)


# ----------------------------------------------------------------------------- markdown


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float | np.floating):
        return "–" if not math.isfinite(value) else f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows[:_MAX_TABLE_ROWS]]
    if len(rows) > _MAX_TABLE_ROWS:
        lines.append(f"\n…and {len(rows) - _MAX_TABLE_ROWS} more rows in report.json.")
    return [*lines, ""]


def _metrics_markdown(metrics: Mapping[str, Any]) -> list[str]:
    scalars = [(k, v) for k, v in metrics.items() if isinstance(v, _SCALARS)]
    lines = _table(("metric", "value"), scalars) if scalars else []
    groups: dict[tuple[str, ...], list[str]] = {}  # flat dicts keyed alike share one table
    for key, value in metrics.items():
        if not isinstance(value, Mapping) or not value:
            continue
        if all(isinstance(v, Mapping) for v in value.values()):  # e.g. patients: id -> dict
            inner = list(dict.fromkeys(k for v in value.values() for k in v))
            lines += _table((key, *inner), [[r, *(value[r].get(c) for c in inner)] for r in value])
        else:
            groups.setdefault(tuple(map(str, value)), []).append(key)
    for columns in groups.values():
        first = metrics[columns[0]]
        lines += _table(("", *columns), [[r, *(metrics[c][r] for c in columns)] for r in first])
    matrix = metrics.get("confusion_matrix")
    if isinstance(matrix, Sequence) and matrix and isinstance(matrix[0], Sequence):
        names = _class_names(metrics, len(matrix))
        lines.append("Confusion matrix (rows: truth, columns: prediction):")
        lines.append("")
        lines += _table(
            ("", *(f"pred {n}" for n in names)),
            [[f"true {n}", *row] for n, row in zip(names, matrix, strict=False)],
        )
    return lines


def _is_rows(value: Any) -> bool:
    """A non-empty list of flat mappings: shown as a table, one row each."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _summary_markdown(
    report: Mapping[str, Any],
    tasks: Mapping[str, Mapping[str, Any]],
    images: Mapping[str, list[tuple[str, str]]],
) -> str:
    lines = [f"# {report.get('title') or 'Evaluation report'}", ""]
    lines += [f"Metrics computed on: {report['description']}", ""]
    extra = [k for k in report if k not in ("title", "description", "tasks")]
    row_lists = [k for k in extra if _is_rows(report[k])]  # e.g. one row per study
    lines += [f"- **{k}**: {_cell(_jsonable(report[k]))}" for k in extra if k not in row_lists]
    lines += [""] if extra else []
    for name, task in tasks.items():
        lines += [f"## {name}", ""]
        if task.get("note"):
            lines += [str(task["note"]), ""]
        lines += _metrics_markdown(task["metrics"])
        lines += [f"![{caption}: {name}]({file_name})\n" for caption, file_name in images[name]]
    for key in row_lists:
        rows = _jsonable(report[key])
        columns = list(dict.fromkeys(c for row in rows for c in row))
        lines += [f"## {key}", ""]
        lines += _table(columns, [[row.get(c) for c in columns] for row in rows])
    lines.append(
        "Full values: [report.json](report.json). Research use only, not for clinical use."
    )
    return "\n".join(lines) + "\n"
