"""RSNA-STR Pulmonary Embolism Detection (Kaggle 2020) as study records.

Layout (as Kaggle ships it)::

    root/train.csv                                       one row per image
    root/train/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm

One record per series; ``patient_id`` is the StudyInstanceUID (the dataset has one study per
patient and gives no patient id). Slice labels are ``pe`` where ``pe_present_on_image`` is 1,
else ``no_pe``; they are matched to the loaded volume's z order through each slice's
SOPInstanceUID, never through file or csv order. Exam labels are the exam-level columns
(:data:`EXAM_COLUMNS`) as floats.
"""

from __future__ import annotations

import csv as csv_module
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from pe_models.data.errors import DatasetError
from pe_models.data.folder import load_ct
from pe_models.data.records import NO_PE, LabelledStudy, StudyRecord

UID_COLUMNS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
SLICE_COLUMN = "pe_present_on_image"
EXAM_COLUMNS = (
    "negative_exam_for_pe", "qa_motion", "qa_contrast", "flow_artifact", "rv_lv_ratio_gte_1",
    "rv_lv_ratio_lt_1", "leftsided_pe", "chronic_pe", "true_filling_defect_not_pe",
    "rightsided_pe", "acute_and_chronic_pe", "central_pe", "indeterminate",
)  # fmt: skip
"""Exam-level label columns, constant over the rows of one series."""


@dataclass
class _Series:
    study_uid: str
    exam: tuple[str, ...]
    first_line: int
    slice_pe: dict[str, bool] = field(default_factory=dict)


def _read_csv(path: Path) -> dict[str, _Series]:
    """Series UID → its rows, in csv order, checking columns and values."""
    series: dict[str, _Series] = {}
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError as error:
        raise DatasetError(path, "label csv not found") from error
    with handle:
        reader = csv_module.reader(handle)
        header = next(reader, [])
        missing = [c for c in (*UID_COLUMNS, SLICE_COLUMN, *EXAM_COLUMNS) if c not in header]
        if missing:
            raise DatasetError(path, f"has no column(s) {', '.join(missing)}")
        study_i, series_i, sop_i = (header.index(c) for c in UID_COLUMNS)
        slice_i = header.index(SLICE_COLUMN)
        exam_i = [header.index(c) for c in EXAM_COLUMNS]
        width = len(header)
        for line, row in enumerate(reader, start=2):
            if len(row) != width:
                raise DatasetError(path, f"line {line} has {len(row)} fields, the header {width}")
            exam = tuple(row[i] for i in exam_i)
            found = series.get(row[series_i])
            if found is None:
                found = series[row[series_i]] = _Series(row[study_i], exam, line)
            elif exam != found.exam or row[study_i] != found.study_uid:
                raise DatasetError(
                    path,
                    f"line {line}: exam labels or study of series {row[series_i]} differ "
                    f"from its first row (line {found.first_line})",
                )
            if row[slice_i] not in ("0", "1"):
                raise DatasetError(path, f"line {line}: {SLICE_COLUMN} is {row[slice_i]!r}")
            found.slice_pe[row[sop_i]] = row[slice_i] == "1"
    for uid, found in series.items():
        try:
            [float(v) for v in found.exam]
        except ValueError as error:
            raise DatasetError(
                path, f"line {found.first_line}: exam labels of series {uid} ({error})"
            ) from error
    return series


def rsna_records(
    root: str | os.PathLike[str],
    *,
    csv: str = "train.csv",
    images: str | None = None,
    limit: int | None = None,
    skip_missing: bool = False,
) -> list[StudyRecord]:
    """One record per series of the RSNA-STR PE csv; only the csv is read here.

    Parameters
    ----------
    root
        The dataset folder.
    csv
        Label csv inside ``root``.
    images
        DICOM folder inside ``root``; defaults to the csv's name without ``.csv`` (``train``).
    limit
        Keep only the first ``limit`` series in csv order (quick experiments).
    skip_missing
        Leave out series whose DICOM folder is absent (a partial download) instead of
        raising.

    Returns
    -------
    list of StudyRecord
        ``dataset="rsna"``, ``patient_id`` = StudyInstanceUID, ``study_id`` =
        SeriesInstanceUID, in csv order.

    Raises
    ------
    DatasetError
        The csv is missing, lacks a column, has a malformed row or inconsistent exam labels,
        or a series has no DICOM folder (unless ``skip_missing``).
    """
    base = Path(root)
    csv_path = base / csv
    image_root = base / (images if images is not None else Path(csv).stem)
    series = _read_csv(csv_path)
    chosen = list(series.items())[:limit] if limit is not None else list(series.items())
    records = []
    missing: list[Path] = []
    for series_uid, found in chosen:
        folder = image_root / found.study_uid / series_uid
        if not folder.is_dir():
            missing.append(folder)
            continue
        exam = {name: float(v) for name, v in zip(EXAM_COLUMNS, found.exam, strict=True)}
        loader = partial(load_rsna_series, folder, series_uid, found.slice_pe, exam, csv_path)
        records.append(StudyRecord(found.study_uid, series_uid, "rsna", loader))
    if missing and not skip_missing:
        raise DatasetError(
            missing[0],
            f"DICOM folder not found ({len(missing)} of {len(chosen)} series of {csv_path} "
            "have none; pass skip_missing=True to leave them out)",
        )
    return records


def load_rsna_series(
    folder: Path,
    series_uid: str,
    slice_pe: Mapping[str, bool],
    exam_labels: Mapping[str, float],
    csv_path: Path,
) -> LabelledStudy:
    """Read one RSNA series and put its csv labels on the volume's slices.

    Parameters
    ----------
    folder
        ``root/train/<StudyInstanceUID>/<SeriesInstanceUID>``.
    series_uid
        The series to load from it.
    slice_pe
        SOPInstanceUID → ``pe_present_on_image``.
    exam_labels
        The exam-level columns.
    csv_path
        The csv the labels came from (named in errors).

    Raises
    ------
    DatasetError
        A loaded slice's SOPInstanceUID is not in the csv.
    """
    volume, headers = load_ct(folder, series_uid)
    assert volume.slice_uids is not None  # DICOM volumes always carry them
    labels = []
    for uid in volume.slice_uids:
        if uid not in slice_pe:
            raise DatasetError(headers[uid].path, f"SOPInstanceUID {uid} has no row in {csv_path}")
        labels.append("pe" if slice_pe[uid] else NO_PE)
    return LabelledStudy(volume, tuple(labels), exam_labels=dict(exam_labels))
