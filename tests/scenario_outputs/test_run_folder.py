"""The run folder: names, the runs root, writing and reading the run files."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from simulator.outputs import (
    DEFAULT_RUNS_ROOT,
    RUNS_DIR_ENV,
    classify_columns,
    new_run_dir,
    read_series,
    read_summary,
    read_timing,
    runs_root,
    split_column,
    write_run,
)
from tests.scenario_outputs.helpers import OPERATORS, REASONS, SCENARIO_TEXT, synthetic_run

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
