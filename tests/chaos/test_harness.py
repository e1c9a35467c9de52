"""The fault-suite harness without processes: discovery, the report, the verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest
from chaos._harness import discover, load, main
from chaos._report import Check, ScenarioResult, render_markdown


def test_every_scenario_file_is_discovered_and_described() -> None:
    """Each chaos/scenario_<name>.py is found under <name>, with a title and a fault."""
    root = Path(__file__).resolve().parents[2] / "chaos"
    on_disk = {p.stem.removeprefix("scenario_") for p in root.glob("scenario_*.py")}
    assert set(discover()) == on_disk
    for _, module in load():
        assert module.TITLE and module.FAULT


def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        load(["no-such-thing"])
    assert main(["--only", "no-such-thing"]) == 2


def test_short_version_asserts_invariants_not_figures() -> None:
    """A failed figure (a time) fails the full run but not the short version."""
    result = ScenarioResult(
        "x",
        "x",
        "a fault",
        [
            Check("count exact", "=", "3 = 3", True),
            Check("stall", "<= 10 ms", "20 ms", False, figure=True),
        ],
    )
    assert not result.ok
    assert result.failures(invariants_only=True) == []
    assert [c.invariant for c in result.failures()] == ["stall"]


def test_report_has_one_row_per_check_and_the_machine() -> None:
    results = [
        ScenarioResult("a", "A", "fault a", [Check("inv", "b", "m", True)]),
        ScenarioResult("b", "B", "fault b", error="RuntimeError: boom"),
    ]
    text = render_markdown(
        results,
        machine=[("CPU model", "test cpu")],
        started="now",
        seconds=1,
        command="python -m chaos",
        commit="abc1234",
        how_to_run="run it",
    )
    assert "| A | inv | b | m | **PASS** |" in text
    assert "| B | scenario ran to the end | no error | RuntimeError: boom | **FAIL** |" in text
    assert "| CPU model | test cpu |" in text
    assert "1 of 2 scenarios pass; git commit measured: abc1234." in text
    assert "Branches merged" not in text
