"""The raw PostgreSQL baseline runs pgbench for real in every mode, conserves money, and leaves
no database behind. Its figures are not asserted: benchmarks are not timed tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from loadtest.pgbaseline import _parse_summary, measure


def test_measure_runs_every_mode_and_drops_its_database(pg_url: str, tmp_path: Path) -> None:
    result = measure(
        pg_url, accounts=2000, seconds=1, clients=2, threads=1, batch=20, work_dir=tmp_path
    )

    assert set(result["modes"]) == {"statements", "function", "batched"}
    for mode, figures in result["modes"].items():
        assert figures["tps"] > 0, mode
        per_transaction = 20 if mode == "batched" else 1
        assert figures["transfers_per_s"] == pytest.approx(figures["tps"] * per_transaction)
        latency = figures["latency_ms"]
        # ordered and not all zero (a loaded CI machine once logged p50 = 0 µs for `batched`:
        # pgbench's log, not ours; timings themselves are not asserted)
        assert 0 <= latency["p50"] <= latency["p95"] <= latency["p99"], mode
        assert latency["p99"] > 0, mode
        assert latency["mean"] > 0
        assert figures["failed"] == 0
        # CPU per transfer: the test server runs on this machine, so it is measured (clock
        # ticks are coarse: a short mode's pgbench may show 0).
        cpu = figures["cpu_ms_per_transfer"]
        assert cpu["database"] is not None and cpu["database"] >= 0 and cpu["pgbench"] >= 0
    assert sum(f["cpu_ms_per_transfer"]["database"] for f in result["modes"].values()) > 0
    assert result["modes"]["batched"]["batch"] == 20
    assert result["modes"]["batched"]["latency_per"] == "batch"
    assert result["server_version"]
    assert result["conservation"]["ok"]
    assert result["conservation"]["balance_before"] == result["conservation"]["balance_after"]

    # The per-transaction logs were kept in a subdirectory named after the throw-away database.
    [run_dir] = tmp_path.iterdir()
    assert run_dir.name.startswith("cbdc_pgbaseline_")
    for mode in result["modes"]:
        assert list(run_dir.glob(f"log_{mode}.*")), mode
    admin = create_engine(pg_url)
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": run_dir.name}
            ).scalar()
    finally:
        admin.dispose()
    assert exists is None


def test_summary_parsing_prefers_tps_without_connection_time() -> None:
    pg15 = (
        "number of transactions actually processed: 10\n"
        "number of failed transactions: 3 (2.000%)\n"
        "tps = 123.456 (without initial connection time)\n"
    )
    assert _parse_summary(pg15) == (123.456, 3)
    pg13 = (
        "tps = 90.5 (including connections establishing)\n"
        "tps = 99.5 (excluding connections establishing)\n"
    )
    assert _parse_summary(pg13) == (99.5, 0)
    with pytest.raises(RuntimeError, match="no tps line"):
        _parse_summary("pgbench: error: connection refused\n")


def test_unknown_mode_is_refused_before_touching_the_server() -> None:
    with pytest.raises(ValueError, match="modes"):
        measure("postgresql+psycopg://nobody@127.0.0.1:1/postgres", modes=("bogus",))
