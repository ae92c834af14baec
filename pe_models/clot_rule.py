"""Choosing a U-Net's study rule (``min_clot_ml``) on validation studies.

While the U-Net gives the slice PE score, a study is PE only when it finds a 3D-connected
clot of at least ``min_clot_ml``. The cut trades PE studies found against studies without PE
cleared. The rule used for the demo U-Net: **the largest cut that keeps every PE study found on its
true clot**, i.e. through a predicted component of which enough lies on the true clot
(``largest_on_clot_ml`` in ``pe-eval``'s study rows). A study found only through a false piece
is found by luck and does not bind the cut. Sensitivity comes first; specificity is what the
largest such cut buys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_CUTS_ML = (0.05, 0.10, 0.12, 0.15, 0.18, 0.20, 0.25, 0.30, 0.40)
"""Cuts tried, in mL: the U-Net's specks on normal scans are a few hundredths of a mL."""


@dataclass(frozen=True)
class CutCounts:
    """What one cut does to the validation studies."""

    cut_ml: float
    pe_found: int
    pe_found_on_clot: int
    cleared: int


@dataclass(frozen=True)
class RuleChoice:
    """Counts per cut and the cut the rule chooses (None: no PE study to keep)."""

    counts: tuple[CutCounts, ...]
    pe_studies: int
    studies_without_pe: int
    chosen_ml: float | None


def _volume(row: Mapping[str, Any], key: str) -> float:
    value = row.get(key)
    return 0.0 if value is None else float(value)


def choose_min_clot_ml(
    studies: Iterable[Mapping[str, Any]], cuts_ml: Sequence[float] = DEFAULT_CUTS_ML
) -> RuleChoice:
    """Count each cut's effect and choose the largest that keeps every PE study on its clot.

    Parameters
    ----------
    studies
        ``pe-eval`` study rows of labelled studies (``report.json``, key ``studies``): each
        needs ``pe_present``, ``largest_clot_ml`` and ``largest_on_clot_ml``.
    cuts_ml
        Candidate cuts in mL, ascending.

    Returns
    -------
    RuleChoice
        The counts per cut; the chosen cut keeps every PE study that the smallest cut finds
        on its clot.

    Raises
    ------
    ValueError
        No cuts, cuts not ascending, or a row without the keys above (a report written
        before ``pe-eval`` listed them, or without the U-Net's masks).
    """
    if not cuts_ml or list(cuts_ml) != sorted(cuts_ml):
        raise ValueError(f"cuts must be given in ascending order, got {list(cuts_ml)}")
    rows = list(studies)
    for row in rows:
        missing = [
            k for k in ("pe_present", "largest_clot_ml", "largest_on_clot_ml") if k not in row
        ]
        if missing or row["pe_present"] is None:
            raise ValueError(
                f"study {row.get('study', '?')}: no {', '.join(missing) or 'pe_present'}; "
                "run pe-eval again on labelled studies with a U-Net installed"
            )
    with_pe = [r for r in rows if r["pe_present"]]
    without_pe = [r for r in rows if not r["pe_present"]]
    counts = tuple(
        CutCounts(
            cut_ml=cut,
            pe_found=sum(_volume(r, "largest_clot_ml") >= cut for r in with_pe),
            pe_found_on_clot=sum(_volume(r, "largest_on_clot_ml") >= cut for r in with_pe),
            cleared=sum(_volume(r, "largest_clot_ml") < cut for r in without_pe),
        )
        for cut in cuts_ml
    )
    must_keep = counts[0].pe_found_on_clot
    kept = [c.cut_ml for c in counts if c.pe_found_on_clot == must_keep]
    # A count never grows with the cut, so the cuts that keep every study form a prefix.
    chosen = kept[-1] if kept and with_pe else None
    return RuleChoice(counts, len(with_pe), len(without_pe), chosen)


def choice_markdown(choice: RuleChoice) -> str:
    """The counts as a markdown table (one column per cut) and the chosen cut."""
    header = ["min_clot_ml", *(f"{c.cut_ml:.2f}" for c in choice.counts)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        f"| PE found (of {choice.pe_studies}) | "
        + " | ".join(str(c.pe_found) for c in choice.counts)
        + " |",
        "| of which on a true clot | "
        + " | ".join(str(c.pe_found_on_clot) for c in choice.counts)
        + " |",
        f"| without PE cleared (of {choice.studies_without_pe}) | "
        + " | ".join(str(c.cleared) for c in choice.counts)
        + " |",
        "",
    ]
    if choice.chosen_ml is None:
        lines.append("No cut chosen: no validation study with PE to keep.")
    else:
        lines.append(
            f"Chosen: min_clot_ml {choice.chosen_ml:g} (the largest cut that keeps every PE "
            "study found on its true clot)."
        )
    return "\n".join(lines) + "\n"
