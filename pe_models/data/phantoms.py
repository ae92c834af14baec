"""Synthetic CTPA phantoms as study records, generated on the fly from their seeds."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import numpy as np

from pe_models.data.records import LabelledStudy, StudyRecord
from pe_models.synth.phantom import KINDS, PHANTOM_VERSION, generate_phantom

MIX = "mix"
"""Kind that draws ``pe``, ``other`` or ``normal`` from the seed, as ``pe-synth --kind mix``."""


def phantom_kind(seed: int, kind: str) -> str:
    """The phantom kind of ``seed``: ``kind`` itself, or drawn from the seed for ``"mix"``."""
    if kind == MIX:
        return KINDS[int(np.random.default_rng(seed).integers(len(KINDS)))]
    if kind not in KINDS:
        raise ValueError(f"unknown phantom kind {kind!r}; valid: {', '.join((*KINDS, MIX))}")
    return kind


def load_phantom(seed: int, kind: str, size: str, contrast: bool) -> LabelledStudy:
    """Generate one phantom and return it with its exact labels."""
    phantom = generate_phantom(seed, kind, size, contrast=contrast)
    return LabelledStudy(
        volume=phantom.volume,
        slice_labels=phantom.slice_labels,
        pe_mask=phantom.pe_mask,
        boxes=phantom.boxes,
        exam_labels={
            "negative_exam_for_pe": float(not phantom.study.pe_present),
            "central_pe": float(phantom.study.central_pe),
            "leftsided_pe": float(phantom.study.leftsided_pe),
            "rightsided_pe": float(phantom.study.rightsided_pe),
        },
        other_mask=phantom.other_mask,
    )


def phantom_records(
    seeds: Iterable[int], kind: str = MIX, *, size: str = "full", contrast: bool = True
) -> list[StudyRecord]:
    """One record per seed; each study is generated when loaded (``size="full"``: ~8 s).

    Parameters
    ----------
    seeds
        Phantom seeds; training, validation and held-out test sets must use disjoint seeds.
    kind
        ``pe``, ``other``, ``normal`` or ``mix`` (kind drawn from each seed).
    size
        ``test`` (128², 48 slices) or ``full`` (512², 200-300 slices).
    contrast
        False for non-contrast studies.
    """
    records = []
    for seed in seeds:
        study_kind = phantom_kind(seed, kind)
        name = f"phantom-{seed:05d}-{study_kind}{'' if contrast else '-nc'}"
        loader = partial(load_phantom, seed, study_kind, size, contrast)
        # The generator version names the cache folder, so a new generator prepares afresh.
        records.append(StudyRecord(name, name, f"phantoms-v{PHANTOM_VERSION}", loader))
    return records
