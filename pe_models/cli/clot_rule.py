"""``pe-clot-rule``: choose a U-Net's ``min_clot_ml`` from ``pe-eval`` validation reports.

    pe-eval --bundles B --phantoms 5000:5048 --out val/mix
    pe-eval --bundles B --phantoms 5100:5199 --kind pe --small-clots 1 --out val/small
    pe-clot-rule val/mix val/small

prints, per cut, the PE studies found (on their true clot) and the studies without PE cleared,
and the cut :func:`pe_models.clot_rule.choose_min_clot_ml` chooses. Run it on validation
reports only: a rule chosen on held-out studies is no longer held out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pe_models.clot_rule import DEFAULT_CUTS_ML, choice_markdown, choose_min_clot_ml


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pe-clot-rule",
        description="Choose a U-Net's study rule (min_clot_ml) from pe-eval reports of "
        "validation studies: the largest cut that keeps every PE study found on its true clot.",
    )
    parser.add_argument(
        "reports", nargs="+", type=Path, help="pe-eval report folders or report.json files"
    )
    parser.add_argument(
        "--cuts",
        default=",".join(f"{c:g}" for c in DEFAULT_CUTS_ML),
        help="candidate cuts in mL, comma-separated, ascending (default: %(default)s)",
    )
    return parser.parse_args(argv)


def _cuts(text: str) -> list[float]:
    try:
        return [float(c) for c in text.split(",")]
    except ValueError:
        raise ValueError(f"--cuts takes mL values separated by commas, got {text!r}") from None


def read_studies(path: Path) -> list[dict[str, Any]]:
    """The study rows of a ``pe-eval`` report (a folder or its ``report.json``).

    Raises
    ------
    ValueError
        The file is missing, is not JSON, or lists no studies; the message names it.
    """
    file = path / "report.json" if path.is_dir() else path
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{file}: not a readable pe-eval report ({error})") from error
    studies = report.get("studies") if isinstance(report, dict) else None
    if not studies:
        raise ValueError(f"{file}: lists no labelled studies")
    return list(studies)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    try:
        cuts = _cuts(args.cuts)
        studies = [row for path in args.reports for row in read_studies(path)]
        choice = choose_min_clot_ml(studies, cuts)
    except ValueError as error:
        print(f"pe-clot-rule: {error}", file=sys.stderr)
        return 2
    print(choice_markdown(choice), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
