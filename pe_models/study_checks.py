"""Can PE be assessed on this series at all? Arterial contrast, lung coverage, z extent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pe_models.preprocess.lung_crop import body_mask, lung_air_mask
from pe_models.volume import Volume

CONTRAST_P90_MIN_HU = 150.0
"""90th percentile of mediastinal blood/soft-tissue HU below which the pulmonary arteries are
taken as unopacified (CTPA bolus: 250-450 HU; plain CT blood: ~40 HU)."""

MIN_DECISION_EXTENT_MM = 20.0
"""Shortest stack (slices × slice spacing, mm) that gets a study decision. A clot is told from a
speck by following it through slices (FUMPE clots run a median 17 mm along z); one or two
slices show a finding but cannot decide a study."""

MIN_LUNG_FRACTION = 0.10
"""Median share of the body's cross-section that is lung, over the series, below which the
series is taken not to cover the chest. A chest CT from apex to base: about 0.3 (phantoms 0.32,
the real MIDRC hilum slices 0.27); an upper-abdomen series that clips the lung bases: 0.01."""

LUNG_SAMPLE_SLICES = 16
"""Slices, evenly spaced along z, on which the lung share is measured."""


@dataclass(frozen=True)
class ContrastCheck:
    """Is there pulmonary arterial contrast? (90th percentile HU of central mediastinal blood)."""

    adequate: bool
    p90_hu: float


@dataclass(frozen=True)
class LungCoverage:
    """Does the series show the lungs? (median share of the body that is lung, 0-1)."""

    adequate: bool
    median_fraction: float


def contrast_check(volume: Volume) -> ContrastCheck:
    """Whether the central mediastinum of the middle slices holds opacified blood."""
    z, rows, columns = volume.shape
    middle = volume.hu[
        z // 3 : 2 * z // 3 + 1,
        int(0.3 * rows) : int(0.6 * rows),
        int(0.35 * columns) : int(0.65 * columns),
    ]
    blood_like = middle[(middle > -50) & (middle < 700)]
    p90 = float(np.percentile(blood_like, 90)) if blood_like.size else float("nan")
    return ContrastCheck(adequate=bool(p90 >= CONTRAST_P90_MIN_HU), p90_hu=p90)


def lung_coverage(volume: Volume) -> LungCoverage:
    """Whether the series covers the lungs (and so the pulmonary arteries), not the abdomen."""
    sampled = np.unique(np.linspace(0, volume.shape[0] - 1, LUNG_SAMPLE_SLICES).round())
    fractions = []
    for z in sampled.astype(int):
        body = body_mask(volume.hu[z], volume.spacing[1:])
        lung = lung_air_mask(volume.hu[z], volume.spacing[1:], body=body)
        fractions.append(lung.sum() / max(int(body.sum()), 1))
    median = float(np.median(fractions))
    return LungCoverage(adequate=median >= MIN_LUNG_FRACTION, median_fraction=median)


@dataclass(frozen=True)
class Assessability:
    """The checks a study decision needs, and why it cannot be made (empty when it can).

    Attributes
    ----------
    contrast
        The arterial contrast check.
    lungs
        The lung coverage check.
    reasons
        Short reasons ("no arterial contrast"), for tables and the findings file.
    warnings
        One sentence per reason, for the reader.
    """

    contrast: ContrastCheck
    lungs: LungCoverage
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def slice_findings_valid(self) -> bool:
        """Whether slice findings (masks, boxes, slice scores) mean anything on this series.

        Not without lung or arterial contrast: without contrast every artery is a soft-tissue
        tube, a filling defect to the models. Too short a stack still has valid slice
        findings; only its study is left undecided.
        """
        return self.contrast.adequate and self.lungs.adequate


def assess(volume: Volume) -> Assessability:
    """Run the checks on ``volume``; see :class:`Assessability`.

    A series that shows almost no lung gets that reason, not "no arterial contrast": its
    "mediastinal" sample is then upper-abdominal organs, and a contrast verdict from it would
    be wrong.
    """
    contrast, lungs = contrast_check(volume), lung_coverage(volume)
    reasons, warnings = [], []
    if not lungs.adequate:
        reasons.append("little lung in the series")
        warnings.append(
            f"the series shows little lung (median {100 * lungs.median_fraction:.1f} % of the "
            "body's cross-section): it does not cover the pulmonary arteries, so PE cannot be "
            "assessed on it"
        )
    elif not contrast.adequate:
        reasons.append("no arterial contrast")
        warnings.append(
            f"no pulmonary arterial contrast (mediastinal blood p90 {contrast.p90_hu:.0f} HU): "
            "PE cannot be assessed on this study"
        )
    extent_mm = volume.shape[0] * volume.spacing[0]
    if extent_mm < MIN_DECISION_EXTENT_MM:
        reasons.append(f"{volume.shape[0]} slice(s), too few")
        warnings.append(
            f"the series covers {extent_mm:.1f} mm along z ({volume.shape[0]} slice(s)); a "
            f"study decision needs at least {MIN_DECISION_EXTENT_MM:.0f} mm: the slice "
            "findings stand, the study is not decided"
        )
    return Assessability(contrast, lungs, tuple(reasons), tuple(warnings))
