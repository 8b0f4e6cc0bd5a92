"""The scenario report and the comparison of runs, on synthetic runs."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from simulator.compare import ComparisonError, compare_runs
from simulator.outputs import (
    read_series,
    write_run,
)
from simulator.report import render_report
from tests.scenario_outputs.helpers import make_run, synthetic_run

# ------------------------------------------------------------------ report


def test_render_report(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "baseline", datetime(2025, 1, 2, 3, 4, 5), extra=True)
    report = render_report(run_dir)
    assert report == run_dir / "report.md"
    text = report.read_text()
    for section in (
        "# Scenario report: baseline",
        "**Question.** Does a 5% adoption drain deposits?",
        "Households adopt wallets\nover a day.",
        "## Run",
        "## Headline figures",
        "### By operator, end of run",
        "### By operator, run totals",
        "## Invariants",
        "**All invariants held** (24 checks).",
        "## Failures by reason",
        "## Other summary fields",
        "## Plots",
    ):
        assert section in text, section
    assert f"cbdc scenario run {run_dir.as_posix()}/scenario.toml" in text
    assert "`sha256:abc123`" in text and "| seed | 42 |" in text
    # End-of-run deposits in major units with separators and the currency.
    assert "| bank deposits | 8,976,000.00 CNY |" in text
    assert "`insufficient_funds`" in text and "`engine_version` | test" in text
    plots = re.findall(r"!\[[^]]*\]\((plots/[^)]+\.png)\)", text)
    expected = {
        "money_stock",
        "reserves_by_operator",
        "vault_float_by_operator",
        "deposits_by_operator",
        "settlement",
        "payments",
        "compliance",
        "throughput",
        "total_mystery_metric",
        "payments_ok_by_operator",
    }
    assert expected <= {Path(p).stem for p in plots}
    for rel in plots:
        data = (run_dir / rel).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == sorted(
        Path(p).name for p in plots
    )


def test_render_report_is_deterministic(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "baseline", datetime(2025, 1, 2, 3, 4, 5))
    first = render_report(run_dir).read_bytes()
    first_plots = {p.name: p.read_bytes() for p in (run_dir / "plots").iterdir()}
    second = render_report(run_dir).read_bytes()
    assert first == second
    assert first_plots == {p.name: p.read_bytes() for p in (run_dir / "plots").iterdir()}


def test_render_report_tolerates_sparse_runs(tmp_path: Path) -> None:
    series = [
        {"step": 1, "time_s": 60.0, "deposits": 100},
        {"step": 2, "time_s": 120.0, "deposits": 90},
    ]
    write_run(
        tmp_path / "sparse", series=series, timing=[], summary={"name": "sparse"}, scenario_text=""
    )
    text = render_report(tmp_path / "sparse").read_text()
    assert "## Plots" in text and "money_stock.png" in text and "throughput" not in text
    assert "_The run did not report an invariant check._" in text
    write_run(tmp_path / "empty", series=[], timing=[], summary={"name": "empty"}, scenario_text="")
    assert "_No series to plot._" in render_report(tmp_path / "empty").read_text()


# ------------------------------------------------------------------ compare


def test_compare_runs_table_and_plots(tmp_path: Path) -> None:
    a = make_run(tmp_path, "baseline", datetime(2025, 1, 2, 3, 4, 5))
    b = make_run(tmp_path, "high-adoption", datetime(2025, 1, 2, 4, 0, 0), scale=2)
    sa, sb = read_series(a), read_series(b)
    result = compare_runs(a, b)
    assert result.out_dir == tmp_path / f"compare-{a.name}-vs-{b.name}"
    rows = {(r.metric, r.stat): r for r in result.rows}

    end = rows["deposits", "end"]
    assert (end.a, end.b) == (sa[-1]["deposits"], sb[-1]["deposits"])
    assert end.diff == sb[-1]["deposits"] - sa[-1]["deposits"] == -2_400_000
    assert end.pct == pytest.approx(100 * end.diff / sa[-1]["deposits"])
    peak = rows["liquidity_need", "peak"]
    assert (peak.a, peak.b, peak.diff) == (300_400, 600_800, 300_400)
    assert peak.pct == pytest.approx(100.0)
    total = rows["gross_settlement", "total"]
    assert total.a == sum(r["gross_settlement"] for r in sa)
    assert total.diff == sum(r["gross_settlement"] for r in sb) - total.a
    zero = rows["liquidity_shortfall", "peak"]
    assert (zero.diff, zero.pct) == (0, 0.0)
    assert rows["payments_per_second", "run"].diff == 0
    assert ("failed.insufficient_funds", "reason") in rows

    cells = dict((row[0], row[1:]) for row in result.table_rows())
    assert cells["bank deposits, end of run"] == (
        "8,976,000.00 CNY",
        "8,952,000.00 CNY",
        "-24,000.00 CNY",
        "-0.3%",
    )
    assert cells["liquidity need, peak per step"][2:] == ("+3,004.00 CNY", "+100.0%")

    md = result.report.read_text()
    assert md.startswith(f"# Comparison: {a.name} vs {b.name}")
    assert "| bank deposits, end of run | 8,976,000.00 CNY |" in md
    assert {p.name for p in result.plots} >= {
        "deposits.png",
        "cbdc_outstanding.png",
        "payments_ok.png",
    }
    for plot in result.plots:
        assert plot.read_bytes().startswith(b"\x89PNG")
        assert f"(plots/{plot.name})" in md


def test_compare_refuses_different_currencies(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", datetime(2025, 1, 1))
    run = synthetic_run(steps=2)
    run["summary"]["currency"] = "EUR"
    write_run(tmp_path / "b", **run)
    with pytest.raises(ComparisonError, match="different money"):
        compare_runs(a, tmp_path / "b")


def test_report_lists_violated_invariants_and_skips_all_zero_extras(tmp_path: Path) -> None:
    run = synthetic_run(steps=4)
    for row in run["series"]:
        row["liquidity_shortfall.BKA1"] = 0
        row["liquidity_shortfall.BKB1"] = 0
    run["summary"]["invariants_ok"] = False
    run["summary"]["invariant_failures"] = [
        {"name": "BKA1: all balances sum to zero", "left": 1234, "right": 0, "ok": False, "step": 2}
    ]
    write_run(tmp_path, **run)
    text = render_report(tmp_path).read_text()
    assert "**INVARIANT VIOLATED** (4 checks). First 1 failed checks:" in text
    assert "| 2 | BKA1: all balances sum to zero | 1,234 | 0 |" in text
    assert "`invariant_failures`" not in text  # shown in its section, not as an unknown field
    assert "not plotted: `liquidity_shortfall.BKA1`, `liquidity_shortfall.BKB1`." in text
    assert not (tmp_path / "plots" / "liquidity_shortfall_by_operator.png").exists()
