"""Seed 2's two-stage triage arithmetic and patient-level aggregation (numpy only)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

TRIAGE_CLASSES = ("normal", "other_disease", "pe")


def combine_stages(p_disease: np.ndarray, p_pe_given_disease: np.ndarray) -> np.ndarray:
    """Slice class probabilities from the two stages.

    Stage 1 says whether a slice is diseased (vs within normal limits); stage 2, trained on
    diseased slices only, says whether the disease is PE (vs other disease).

    Parameters
    ----------
    p_disease, p_pe_given_disease
        (n,) probabilities of stage 1 and stage 2 per slice.

    Returns
    -------
    np.ndarray
        (n, 3) probabilities of ``TRIAGE_CLASSES``; rows sum to 1.
    """
    disease = np.clip(np.asarray(p_disease, dtype=float), 0, 1)
    pe = np.clip(np.asarray(p_pe_given_disease, dtype=float), 0, 1)
    return np.stack([1 - disease, disease * (1 - pe), disease * pe], axis=-1)


def triage_classes(
    p_disease: np.ndarray, p_pe: np.ndarray, *, disease_cut: float, pe_cut: float
) -> list[str]:
    """The triage class of each slice at the two bundles' cuts (chosen on validation).

    PE where P(PE) reaches ``pe_cut`` (the rule of the triage slice PE score, so a PE class
    and a positive slice are one thing); else normal where stage 1 stays under
    ``disease_cut``; else other disease. An arg-max of the class probabilities would instead
    fix both cuts near 0.5, where a stage 1 trained to find small lesions calls most normal
    slices diseased.

    Parameters
    ----------
    p_disease
        (n,) stage 1 probabilities, diseased vs within normal limits.
    p_pe
        (n,) P(PE) = stage 1 × stage 2 (the ``pe`` column of :func:`combine_stages`).
    disease_cut, pe_cut
        Stage 1's cut and the cut on P(PE).

    Returns
    -------
    list of str
        n names from ``TRIAGE_CLASSES``.
    """
    disease = np.asarray(p_disease, dtype=float)
    pe = np.asarray(p_pe, dtype=float)
    names = np.where(pe >= pe_cut, "pe", np.where(disease < disease_cut, "normal", "other_disease"))
    return [str(name) for name in names]


def longest_run(indices: Iterable[int]) -> int:
    """The most consecutive integers among ``indices`` (slice z indices), 0 for none."""
    best = run = 0
    previous = None
    for index in sorted(set(indices)):
        run = run + 1 if previous is not None and index == previous + 1 else 1
        best = max(best, run)
        previous = index
    return best


def patient_probability(slice_probabilities: np.ndarray) -> float:
    """Study PE probability under "any slice positive": the highest slice probability."""
    values = np.asarray(slice_probabilities, dtype=float)
    return float(values.max()) if values.size else 0.0
