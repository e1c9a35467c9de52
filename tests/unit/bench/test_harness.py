"""The bench harness: discovery, selection, failure handling and the written report."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
from bench import Context, Section, Table, Target
from bench._harness import discover, load, main, run_modules
from bench._report import fmt_bytes, fmt_ratio
from bench._timing import OpCase, time_ops


def test_discovers_every_bench_module_by_file_name() -> None:
    """Each bench/bench_<name>.py is found under <name>, with no registration."""
    found = discover()
    assert found["library_hot_path"] == "bench.bench_library_hot_path"
    assert found["exposition"] == "bench.bench_exposition"
    root = Path(__file__).resolve().parents[3] / "bench"
    on_disk = {p.stem.removeprefix("bench_") for p in root.glob("bench_*.py")}
    assert set(found) == on_disk


def test_load_selects_only_the_named_module() -> None:
    """--only NAME loads that module alone, and the modules expose run()."""
    loaded = load(["exposition"])
    assert [name for name, _ in loaded] == ["exposition"]
    assert callable(loaded[0][1].run)


def test_load_orders_modules_by_their_order_attribute() -> None:
    """A full run goes hot path first, then exposition (ORDER), whatever the file order."""
    names = [name for name, _ in load()]
    assert names.index("library_hot_path") < names.index("exposition")


def test_unknown_module_is_a_clear_error() -> None:
    """An unknown --only name raises ValueError naming it and the known ones."""
    with pytest.raises(ValueError, match=r"unknown bench module\(s\) nope; known: .*exposition"):
        load(["nope"])


def test_main_exits_2_on_unknown_module(capsys: pytest.CaptureFixture[str]) -> None:
    """python -m bench --only nope exits 2 with the reason on stderr and writes nothing."""
    assert main(["--only", "nope"]) == 2
    assert "unknown bench module(s) nope" in capsys.readouterr().err


def test_a_failing_module_is_reported_and_the_others_still_run() -> None:
    """A module that raises marks the run failed but does not stop the next module."""

    def broken(ctx: Context) -> list[Section]:
        raise RuntimeError("boom")

    def fine(ctx: Context) -> list[Section]:
        return [Section("Fine", "prose", targets=[Target("t", "≤ 1×", "0.5×", True)])]

    modules = [
        ("broken", types.SimpleNamespace(run=broken)),
        ("fine", types.SimpleNamespace(run=fine)),
    ]
    result = run_modules(modules, Context(quick=True), "test")  # type: ignore[arg-type]
    assert [m.error for m in result.modules] == ["RuntimeError: boom", None]
    assert [t.name for _, t in result.targets] == ["t"]
    assert not result.ok


def test_a_failed_target_makes_the_run_not_ok() -> None:
    """One FAIL target is enough for a non-zero exit."""

    def failing(ctx: Context) -> list[Section]:
        return [Section("S", "prose", targets=[Target("t", "≤ 1×", "2×", False)])]

    result = run_modules([("f", types.SimpleNamespace(run=failing))], Context(), "test")  # type: ignore[list-item]
    assert result.modules[0].error is None
    assert not result.ok


def test_table_rows_must_match_columns() -> None:
    """A row with the wrong number of cells is refused when the table is made."""
    with pytest.raises(ValueError, match="has 1 cells, expected 2"):
        Table("T", ("a", "b"), [("only one",)])


def test_formatting_helpers() -> None:
    """Ratios get two decimals and a times sign; sizes use binary units."""
    assert fmt_ratio(1.234) == "1.23×"
    assert fmt_bytes(512) == "512 B"
    assert fmt_bytes(2048) == "2.0 KiB"
    assert fmt_bytes(3 * 2**20) == "3.0 MiB"


def test_time_ops_reports_every_case_for_every_repeat() -> None:
    """Every case gets one net time per round; duplicate labels are refused."""
    cases = [OpCase("a", "f(x)", {"f": len, "x": "ab"}), OpCase("b", "f()", {"f": list})]
    stats = time_ops(cases, repeats=3, run_seconds=0.001)
    assert list(stats) == ["a", "b"]
    assert all(len(s.runs_ns) == 3 and s.best_ns == min(s.runs_ns) for s in stats.values())
    with pytest.raises(ValueError, match="unique"):
        time_ops([cases[0], cases[0]], repeats=1)


def test_only_run_writes_report_and_json(tmp_path: Path) -> None:
    """A quick --only run writes a report with machine facts, verdicts and how-to-run."""
    report, raw = tmp_path / "bench.md", tmp_path / "results.json"
    status = main(
        ["--only", "library_hot_path", "--quick", "--output", str(report), "--json", str(raw)]
    )
    assert status in (0, 1)  # the verdict depends on timing; the file must exist either way
    text = report.read_text()
    for expected in (
        "## Targets",
        "## Machine",
        "| CPU model |",
        "| package prometheus-client |",
        "## Hot path: frame latency histogram",
        "## Hot path: connection gauges",
        "prometheus_client cached child `observe` (baseline)",
        "OpenTelemetry SDK `histogram.record`",
        "`StreamingMetrics.record_rtmp_frame_latency` with stream_id",
        "prometheus_client cached child `observe` with exemplar",
        "## How to run",
    ):
        assert expected in text
    # Latency: the helper, and the method with a stream id (exemplars); connections.
    assert text.count("**PASS**") + text.count("**FAIL**") == 3
    data = json.loads(raw.read_text())
    assert [m["name"] for m in data["modules"]] == ["library_hot_path"]
    assert data["ok"] == (status == 0)
