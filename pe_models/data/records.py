"""The one shape every dataset takes: studies that load lazily into labelled volumes.

A dataset adapter (phantoms, RSNA-STR PE, FUMPE, a DICOM/NIfTI + mask folder, COCO) lists
:class:`StudyRecord` objects without reading pixels; ``record.load()`` reads one study and
returns a :class:`LabelledStudy` whose labels follow the volume's z order. Splits are made on
``patient_id``, never on slices, so no patient is on both sides of a split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from pe_models.volume import Volume

SLICE_LABELS = ("normal", "other_disease", "pe")
"""Per-slice classes of seed 2's triage (``normal`` = within normal limits)."""

NO_PE = "no_pe"
"""Slice label for datasets that say only whether PE is present (RSNA, FUMPE): the slice has
no PE, and whether it is otherwise normal is unknown."""

Box = tuple[float, float, float, float]
"""x0, y0, x1, y1 in pixels of the original slice (x = column, y = row; x1, y1 exclusive)."""


@dataclass(frozen=True, eq=False)
class LabelledStudy:
    """One study's CT and what is known about it, in the volume's z order.

    Attributes
    ----------
    volume
        The CT.
    slice_labels
        Per z: one of ``SLICE_LABELS`` or ``NO_PE``; None when unknown.
    pe_mask
        uint8 (z, y, x) 0/1 PE mask on the volume's grid, or None.
    boxes
        Per z, the PE boxes of that slice; None when unknown.
    exam_labels
        Study-level labels (RSNA-STR PE's exam columns, e.g. ``negative_exam_for_pe``).
    other_mask
        uint8 (z, y, x) 0/1 mask of lesions other than PE (nodules, consolidation: what a
        model may mistake for a clot), or None.
    """

    volume: Volume
    slice_labels: tuple[str, ...] | None = None
    pe_mask: np.ndarray | None = None
    boxes: tuple[tuple[Box, ...], ...] | None = None
    exam_labels: Mapping[str, float] = field(default_factory=dict)
    other_mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        z = self.volume.shape[0]
        if self.slice_labels is not None:
            if len(self.slice_labels) != z:
                raise ValueError(f"{len(self.slice_labels)} slice labels for {z} slices")
            unknown = set(self.slice_labels) - {*SLICE_LABELS, NO_PE}
            if unknown:
                raise ValueError(f"unknown slice labels {sorted(unknown)}")
        for name, mask in (("PE", self.pe_mask), ("other-disease", self.other_mask)):
            if mask is not None and mask.shape != self.volume.shape:
                raise ValueError(f"{name} mask {mask.shape} does not match {self.volume.shape}")
        if self.boxes is not None and len(self.boxes) != z:
            raise ValueError(f"boxes for {len(self.boxes)} slices, volume has {z}")

    @property
    def pe_present(self) -> bool | None:
        """Whether any slice shows PE (from labels, else mask, else boxes); None if unknown."""
        if self.slice_labels is not None:
            return "pe" in self.slice_labels
        if self.pe_mask is not None:
            return bool(self.pe_mask.any())
        if self.boxes is not None:
            return any(self.boxes)
        return None


@dataclass(frozen=True, eq=False)
class StudyRecord:
    """A study listed by a dataset adapter; nothing is read until :meth:`load`.

    Attributes
    ----------
    patient_id
        Splits keep all studies of one patient on one side.
    study_id
        Unique within the dataset (e.g. a SeriesInstanceUID or a folder name).
    dataset
        Name of the adapter that listed it (``phantoms``, ``rsna``, ``fumpe``, ``folder``, ...).
    loader
        Picklable callable (a module-level function or ``functools.partial``) that reads
        the study; kept picklable so DataLoader workers and DDP processes can call it.
    """

    patient_id: str
    study_id: str
    dataset: str
    loader: Callable[[], LabelledStudy]

    def load(self) -> LabelledStudy:
        """Read the study (pixels, labels, masks)."""
        return self.loader()

    @property
    def file_stem(self) -> str:
        """The study id with every character a file name may not hold replaced by ``_``."""
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in self.study_id)


def split_by_patient(
    records: Sequence[StudyRecord],
    fractions: Mapping[str, float],
    *,
    seed: int = 0,
) -> dict[str, list[StudyRecord]]:
    """Split studies into named parts by patient, never by slice or study.

    Parameters
    ----------
    records
        The studies.
    fractions
        Part name → fraction of patients, e.g. ``{"train": 0.7, "val": 0.1, "test": 0.2}``;
        fractions are normalised to sum to 1. Every part with a positive fraction gets at
        least one patient when there are enough patients.
    seed
        Shuffling seed; the same records and seed give the same split.

    Returns
    -------
    dict
        Part name → records, in the input order.
    """
    if not fractions or min(fractions.values()) < 0 or sum(fractions.values()) <= 0:
        raise ValueError(f"fractions must be non-negative and not all zero: {dict(fractions)}")
    patients = sorted({r.patient_id for r in records})
    order = np.random.default_rng(seed).permutation(len(patients))
    total = sum(fractions.values())
    names = list(fractions)
    bounds = np.cumsum([fractions[n] / total for n in names]) * len(patients)
    ends = np.round(bounds).astype(int)
    for i, name in enumerate(names):  # a part asked for gets at least one patient
        start = ends[i - 1] if i else 0
        if fractions[name] > 0 and ends[i] <= start and start < len(patients):
            ends[i:] = np.maximum(ends[i:], start + 1)
    ends[-1] = len(patients)
    part_of: dict[str, str] = {}
    start = 0
    for name, end in zip(names, ends, strict=True):
        for index in order[start:end]:
            part_of[patients[index]] = name
        start = end
    parts: dict[str, list[StudyRecord]] = {name: [] for name in names}
    for record in records:
        parts[part_of[record.patient_id]].append(record)
    return parts
