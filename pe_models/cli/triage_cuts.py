"""``pe-triage-cuts``: choose the triage cuts and study rule from ``pe-eval`` validation slices.

    pe-eval --bundles B --phantoms 5000:5012 --out val/triage   # B: both triage bundles
    pe-triage-cuts val/triage

prints stage 1's cut, the P(PE) cut and ``min_disease_mm`` chosen by
:mod:`pe_models.triage_cuts`, with what they do on the validation slices and each study's
longest run called not normal. Write them into the experiment files, then ``pe-train
--reuse … --recut`` gives the bundles those values. Run it on validation studies only: a cut
chosen on held-out studies is no longer held out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pe_models.triage_cuts import (
    choice_markdown,
    choose_cuts,
    choose_min_disease_mm,
    read_slices,
    study_runs,
)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pe-triage-cuts",
        description="Choose the triage cuts (stage 1, P(PE)) and the study rule "
        "(min_disease_mm) from the slices.csv of pe-eval runs on validation studies.",
    )
    parser.add_argument(
        "reports", nargs="+", type=Path, help="pe-eval report folders or slices.csv files"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    try:
        slices = read_slices(args.reports)
        choice = choose_cuts(slices)
    except ValueError as error:
        print(f"pe-triage-cuts: {error}", file=sys.stderr)
        return 2
    runs = study_runs(slices, choice.disease_cut, choice.pe_cut)
    print(choice_markdown(slices, choice, runs, choose_min_disease_mm(runs)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
