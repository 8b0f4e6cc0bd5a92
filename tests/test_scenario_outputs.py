"""The scenario engine's output side on synthetic runs: the run folder, the report, comparisons
and the `cbdc scenario list|compare` commands. No database involved."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from simulator.compare import ComparisonError, compare_runs
from simulator.outputs import (
    DEFAULT_RUNS_ROOT,
    RUNS_DIR_ENV,
    classify_columns,
    list_runs,
    new_run_dir,
    read_series,
    read_summary,
    read_timing,
    resolve_run,
    runs_root,
    split_column,
    write_run,
)
from simulator.report import render_report

OPERATORS = ["BKA1", "BKB1"]
REASONS = ["insufficient_funds", "balance_cap_exceeded", "limit_exceeded"]
SCENARIO_TEXT = '[scenario]\nname = "baseline"\nquestion = "Does it hold?"\r\n# exact bytes\n'


def synthetic_run(steps: int = 24, scale: int = 1, extra: bool = False) -> dict[str, Any]:
    """Series/timing/summary shaped like the engine's, with 2 operators and 3 failure reasons."""
    series = []
    failed_totals = dict.fromkeys(REASONS, 0)
    ok_total = 0
    for step in range(1, steps + 1):
        row: dict[str, int | float] = {"step": step, "time_s": step * 3600.0}
        wallets = 1_000_00 * step * scale
        row["cbdc_outstanding"] = 5_000_000_00 + wallets
        row["household_cash"] = 2_000_000_00 - wallets // 2
        row["deposits"] = 9_000_000_00 - wallets
        row["reserves"] = 3_000_000_00
        row["vault_float"] = 5_000_000_00
        row["wallet_balances"] = wallets
        row["cash_on_hand"] = 123_45 * step
        row["gross_settlement"] = 50_000_00 * scale + step
        row["net_settlement"] = 7_000_00 * scale + step
        row["liquidity_need"] = (3_000_00 + 100 * (step % 5)) * scale
        row["liquidity_shortfall"] = 0
        ok = 100 * scale + step
        row["payments_ok"] = ok
        ok_total += ok
        failed = 0
        for i, reason in enumerate(REASONS):
            count = (step + i) % (3 + i)
            row[f"failed.{reason}"] = count
            failed_totals[reason] += count
            failed += count
        row["payments_failed"] = failed
        row["limit_hits"] = step % 3
        row["aml_alerts"] = step % 2
        row["wallets_adopted"] = 10 * step
        for k, code in enumerate(OPERATORS):
            row[f"deposits.{code}"] = (4_500_000_00 - wallets // 2) + k
            row[f"reserves.{code}"] = 1_500_000_00 + k
            row[f"vault_float.{code}"] = 2_500_000_00 - k
            row[f"wallet_balances.{code}"] = wallets // 2
            row[f"liquidity_need.{code}"] = 1_500_00 * scale
            row[f"payments_ok.{code}"] = ok // 2
        if extra:
            row["mystery_metric"] = 0.5 * step
        series.append(row)
    timing = [
        {"step": float(s), "wall_seconds": 0.25, "payments_per_second": 400.0 + s}
        for s in range(1, steps + 1)
    ]
    failed_total = sum(failed_totals.values())
    summary = {
        "name": "baseline",
        "question": "Does a 5% adoption drain deposits?",
        "description": "Households adopt wallets\nover a day.",
        "seed": 42,
        "scenario_digest": "sha256:abc123",
        "operators": OPERATORS,
        "currency": "CNY",
        "decimals": 2,
        "steps": steps,
        "step_seconds": 3600,
        "settlement_mode": "deferred_net",
        "payments_total": ok_total + failed_total,
        "payments_ok": ok_total,
        "payments_failed": failed_total,
        "failed_by_reason": failed_totals,
        "wall_seconds": 6.0,
        "payments_per_second": 412.5,
        "invariants_checked": steps,
        "invariants_ok": True,
        "started_at": "2025-01-02T03:04:05+00:00",
        "engine_version": "test",
        "knobs": {"b": 2, "a": 1},
    }
    return {"series": series, "timing": timing, "summary": summary, "scenario_text": SCENARIO_TEXT}


def make_run(root: Path, name: str, when: datetime, **kwargs: Any) -> Path:
    run = synthetic_run(**kwargs)
    run["summary"]["name"] = name
    run["summary"]["started_at"] = when.isoformat()
    run_dir = new_run_dir(root, name, when)
    write_run(run_dir, **run)
    return run_dir


# ------------------------------------------------------------------ run folder


def test_new_run_dir_names_and_suffixes(tmp_path: Path) -> None:
    when = datetime(2025, 3, 4, 5, 6, 7)
    first = new_run_dir(tmp_path / "runs", "cash run", when)
    second = new_run_dir(tmp_path / "runs", "cash run", when)
    third = new_run_dir(tmp_path / "runs", "cash run", when)
    assert first.name == "cash-run-20250304-050607"
    assert second.name == "cash-run-20250304-050607-2"
    assert third.name == "cash-run-20250304-050607-3"
    assert first.is_dir() and second.is_dir() and third.is_dir()


def test_runs_root_default_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(RUNS_DIR_ENV, raising=False)
    assert runs_root() == DEFAULT_RUNS_ROOT == Path("runs")
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path))
    assert runs_root() == tmp_path
    assert runs_root(tmp_path / "x") == tmp_path / "x"


def test_write_run_files_and_round_trip(tmp_path: Path) -> None:
    run = synthetic_run()
    run["series"][0]["time_s"] = 0.1  # a float that must survive the round trip exactly
    run_dir = tmp_path / "run"
    write_run(run_dir, **run)
    for name in ("series.csv", "timing.csv", "summary.json", "scenario.toml"):
        assert (run_dir / name).stat().st_size > 0
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]  # no temp files left
    assert (run_dir / "scenario.toml").read_bytes() == SCENARIO_TEXT.encode()
    header = (run_dir / "series.csv").read_text().splitlines()[0].split(",")
    assert header == list(run["series"][0])
    series = read_series(run_dir)
    assert series == run["series"]
    assert all(
        type(a) is type(b)
        for a, b in zip(series[3].values(), run["series"][3].values(), strict=True)
    )
    assert read_timing(run_dir) == run["timing"]
    summary = read_summary(run_dir)
    assert summary["parquet"] == (run_dir / "series.parquet").exists()
    assert {k: v for k, v in summary.items() if k != "parquet"} == run["summary"]
    text = (run_dir / "summary.json").read_text()
    assert text == json.dumps(summary, indent=2, sort_keys=True) + "\n"
    assert "parquet" not in run["summary"]  # the caller's dict is left alone


def test_write_run_without_pyarrow_notes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simulator.outputs as outputs

    monkeypatch.setattr(outputs, "parquet_available", lambda: False)
    write_run(tmp_path, **synthetic_run(steps=3))
    assert read_summary(tmp_path)["parquet"] is False
    assert not (tmp_path / "series.parquet").exists()


def test_write_run_refuses_ragged_or_non_numeric_rows(tmp_path: Path) -> None:
    run = synthetic_run(steps=3)
    del run["series"][1]["aml_alerts"]
    with pytest.raises(ValueError, match="row 1"):
        write_run(tmp_path / "a", **run)
    assert not (tmp_path / "a").exists()  # validated before anything is written
    run = synthetic_run(steps=3)
    run["series"][2]["deposits"] = "12"
    with pytest.raises(TypeError, match="deposits"):
        write_run(tmp_path / "b", **run)


def test_columns_are_classified_by_known_operator_codes() -> None:
    assert split_column("deposits.BKA1", OPERATORS) == ("deposits", "BKA1")
    assert split_column("failed.insufficient_funds", OPERATORS) == (
        "failed.insufficient_funds",
        None,
    )
    assert split_column("failed.ABCD", OPERATORS) == ("failed.ABCD", None)  # not an operator
    assert split_column("failed.ABCD") == ("failed", "ABCD")  # no list: by shape
    cols = classify_columns(synthetic_run(steps=1)["series"][0], {"operators": OPERATORS})
    assert cols.failures == [f"failed.{r}" for r in REASONS]
    assert set(cols.per_operator["reserves"]) == set(OPERATORS)
    assert "step" not in cols.totals and "time_s" not in cols.totals
    assert "payments_ok" in cols.totals and "payments_ok" in cols.per_operator


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


# ------------------------------------------------------------------ finding runs and the CLI


def test_list_and_resolve_runs(tmp_path: Path) -> None:
    old = make_run(tmp_path, "baseline", datetime(2025, 1, 1, 0, 0, 0))
    new = make_run(tmp_path, "baseline", datetime(2025, 1, 2, 0, 0, 0))
    other = make_run(tmp_path, "stress", datetime(2025, 1, 1, 12, 0, 0))
    broken = tmp_path / "crashed-20250103-000000"
    broken.mkdir()
    (broken / "scenario.toml").write_text("")
    (tmp_path / "not-a-run").mkdir()
    runs = list_runs(tmp_path)
    assert [r.path for r in runs] == [broken, new, other, old]
    assert [r.complete for r in runs] == [False, True, True, True]
    assert resolve_run("baseline", tmp_path) == new  # scenario name -> its newest run
    assert resolve_run(old.name, tmp_path) == old
    assert resolve_run(str(other), tmp_path / "elsewhere") == other
    with pytest.raises(FileNotFoundError, match="no run folder"):
        resolve_run("nope", tmp_path)
    with pytest.raises(FileNotFoundError, match="not a complete run folder"):
        resolve_run(broken.name, tmp_path)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    from cli.console import console

    monkeypatch.setattr(console, "_width", 200)  # no wrapping of long run names
    monkeypatch.delenv(RUNS_DIR_ENV, raising=False)
    return CliRunner()


def test_cli_list(cli: CliRunner, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    old = make_run(runs, "baseline", datetime(2025, 1, 1, 0, 0, 0))
    new = make_run(runs, "stress", datetime(2025, 1, 2, 0, 0, 0))
    examples = tmp_path / "scenarios"
    examples.mkdir()
    (examples / "cash.toml").write_text(
        '[scenario]\nname = "cash-run"\nquestion = "Does [cash] run?"\n'
    )
    (examples / "bad.toml").write_text("[scenario\n")
    result = cli.invoke(
        app, ["scenario", "list", "--runs-dir", str(runs), "--scenarios-dir", str(examples)]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index(new.name) < out.index(old.name)  # newest first
    assert "2025-01-02 00:00:00" in out and "412.5" in out and "ok" in out
    assert "cash-run" in out and "Does [cash] run?" in out and "unreadable" in out

    empty = cli.invoke(
        app,
        [
            "scenario",
            "list",
            "--runs-dir",
            str(tmp_path / "none"),
            "--scenarios-dir",
            str(examples),
        ],
    )
    assert empty.exit_code == 0 and "No runs in" in empty.output


def test_cli_list_uses_env_runs_dir(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(tmp_path, "envrun", datetime(2025, 1, 1))
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path))
    result = cli.invoke(app, ["scenario", "list", "--scenarios-dir", str(tmp_path / "none")])
    assert result.exit_code == 0 and run.name in result.output


def test_cli_compare(cli: CliRunner, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    a = make_run(runs, "baseline", datetime(2025, 1, 1))
    b = make_run(runs, "stress", datetime(2025, 1, 2), scale=2)
    out = tmp_path / "cmp"
    # by folder name and by scenario name, relative to the runs dir
    result = cli.invoke(
        app, ["scenario", "compare", a.name, "stress", "--runs-dir", str(runs), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "bank deposits, end of run" in result.output
    assert "-24,000.00 CNY" in result.output and "-0.3%" in result.output
    assert str(out / "compare.md") in result.output
    assert (out / "compare.md").exists() and (out / "plots" / "deposits.png").exists()
    # by path, default output folder beside run A
    result = cli.invoke(app, ["scenario", "compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert (runs / f"compare-{a.name}-vs-{b.name}" / "compare.md").exists()


def test_cli_compare_missing_run(cli: CliRunner, tmp_path: Path) -> None:
    a = make_run(tmp_path, "baseline", datetime(2025, 1, 1))
    result = cli.invoke(app, ["scenario", "compare", str(a), "ghost", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "no run folder 'ghost'" in result.output
    assert "Traceback" not in result.output


def test_cli_run_missing_file(cli: CliRunner, tmp_path: Path) -> None:
    # Fails before the engine is imported: no database, no engine needed.
    result = cli.invoke(app, ["scenario", "run", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2 and "no scenario file" in result.output
    assert not os.path.exists(tmp_path / "runs")


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


def stand_in_engine(monkeypatch: pytest.MonkeyPatch, behaviour: Any) -> list[dict[str, Any]]:
    """Put a stand-in `simulator.run` in place (the real one needs PostgreSQL)."""
    import sys
    import types

    calls: list[dict[str, Any]] = []
    module = types.ModuleType("simulator.run")

    def run_scenario(
        path: Path,
        *,
        runs_root: Path,
        database_url: str | None,
        progress: Any,
        full_checks: bool = False,
        baseline: bool = False,
    ) -> Path:
        calls.append(
            {
                "path": path,
                "runs_root": runs_root,
                "database_url": database_url,
                "full_checks": full_checks,
                "baseline": baseline,
            }
        )
        return behaviour(runs_root, progress)

    module.run_scenario = run_scenario  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "simulator.run", module)
    return calls


def test_cli_run_with_a_stand_in_engine(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def behaviour(root: Path, progress: Any) -> Path:
        for done in range(1, 4):
            if progress is not None:  # --quiet passes none
                progress(done, 3, {"payments_per_second": 1234.5})
        return make_run(root, "baseline", datetime(2025, 1, 1))

    calls = stand_in_engine(monkeypatch, behaviour)
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO_TEXT)
    runs = tmp_path / "runs"
    args = ["scenario", "run", str(scenario), "--runs-dir", str(runs), "--database-url", "pg://x"]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert calls == [
        {
            "path": scenario,
            "runs_root": runs,
            "database_url": "pg://x",
            "full_checks": False,
            "baseline": False,
        }
    ]
    run_dir = next(runs.iterdir())
    assert (run_dir / "report.md").exists()
    assert "all invariants hold" in result.output and "2,808" in result.output
    assert str(run_dir / "report.md") in result.output

    quiet = cli.invoke(app, ["scenario", "run", str(scenario), "--runs-dir", str(runs), "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.output.strip().endswith("-2")  # the second run folder of that second


def test_cli_run_scenario_error_exits_2_without_traceback(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulator.scenario_loading import ScenarioError

    def behaviour(root: Path, progress: Any) -> Path:
        raise ScenarioError("s.toml", [("[scenario].seed", "must be an integer [got 'x']")])

    stand_in_engine(monkeypatch, behaviour)
    scenario = tmp_path / "s.toml"
    scenario.write_text("")
    result = cli.invoke(app, ["scenario", "run", str(scenario), "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "s.toml: [scenario].seed: must be an integer [got 'x']" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
