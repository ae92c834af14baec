"""Choosing min_clot_ml from validation study rows, and the pe-clot-rule command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pe_models.cli.clot_rule import main as pe_clot_rule
from pe_models.clot_rule import choose_min_clot_ml


def _row(name: str, pe: bool, largest: float | None, on_clot: float | None) -> dict:
    return {
        "study": name,
        "pe_present": pe,
        "largest_clot_ml": largest,
        "largest_on_clot_ml": on_clot,
    }


STUDIES = [
    _row("big", True, 0.5, 0.5),
    _row("small", True, 0.2, 0.16),  # binds the rule: lost above 0.16 mL
    _row("false piece", True, 0.3, None),  # found by luck: does not bind it
    _row("tiny", True, 0.02, 0.02),  # no cut finds it on its clot
    _row("speck", False, 0.1, None),
    _row("clean", False, None, None),
    _row("mimic", False, 0.35, None),
]


def test_the_rule_keeps_every_pe_study_found_on_its_clot() -> None:
    choice = choose_min_clot_ml(STUDIES, [0.05, 0.15, 0.18, 0.4])
    assert choice.chosen_ml == 0.15
    assert (choice.pe_studies, choice.studies_without_pe) == (4, 3)
    rows = {c.cut_ml: (c.pe_found, c.pe_found_on_clot, c.cleared) for c in choice.counts}
    assert rows == {0.05: (3, 2, 1), 0.15: (3, 2, 2), 0.18: (3, 1, 2), 0.4: (1, 1, 3)}


def test_rows_without_the_truth_or_unsorted_cuts_are_refused() -> None:
    with pytest.raises(ValueError, match="study old: no largest_on_clot_ml"):
        choose_min_clot_ml([{"study": "old", "pe_present": True, "largest_clot_ml": 0.2}])
    with pytest.raises(ValueError, match="ascending"):
        choose_min_clot_ml(STUDIES, [0.3, 0.1])


def test_pe_clot_rule_reads_reports_and_names_a_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, rows in (("mix", STUDIES[:2] + STUDIES[4:]), ("small", STUDIES[2:4])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps({"studies": rows}))
    arguments = [str(tmp_path / "mix"), str(tmp_path / "small" / "report.json")]
    assert pe_clot_rule([*arguments, "--cuts", "0.05,0.15,0.18,0.4"]) == 0
    out = capsys.readouterr().out
    assert "| PE found (of 4) | 3 | 3 | 3 | 1 |" in out
    assert "Chosen: min_clot_ml 0.15" in out
    assert pe_clot_rule([str(tmp_path / "none.json")]) == 2
    assert "none.json: not a readable pe-eval report" in capsys.readouterr().err
    assert pe_clot_rule([*arguments, "--cuts", "0.1,x"]) == 2
    assert "--cuts" in capsys.readouterr().err
