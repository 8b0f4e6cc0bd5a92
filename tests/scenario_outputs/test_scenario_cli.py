"""Finding runs, and the `cbdc scenario list|compare|run` commands."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from simulator.outputs import (
    RUNS_DIR_ENV,
    list_runs,
    resolve_run,
)
from tests.scenario_outputs.helpers import SCENARIO_TEXT, make_run

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
