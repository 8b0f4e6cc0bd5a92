"""Running a scenario file to a run folder: the database server, the engine, the summary.

`run_scenario` is what `cbdc scenario run` calls: it loads and checks the file, starts (or
uses) a PostgreSQL server, runs `simulator.engine.Engine` step by step, optionally measures the
raw-PostgreSQL baseline (`simulator/baseline.py`), and writes series, timing and summary with
`simulator.outputs.write_run`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulator.engine import Engine, Progress
from simulator.scenario_loading import load_scenario


def normalise_series(series: list[dict[str, int | float]]) -> list[dict[str, int | float]]:
    """Every row with every column (failure reasons first seen late are 0 before)."""
    columns: list[str] = []
    for row in series:
        for key in row:
            if key not in columns:
                columns.append(key)
    head = [c for c in columns if not c.startswith("failed.")]
    failed = sorted(c for c in columns if c.startswith("failed."))
    ordered = (
        head[: head.index("payments_failed") + 1]
        + failed
        + head[head.index("payments_failed") + 1 :]
    )
    return [{c: row.get(c, 0) for c in ordered} for row in series]


def run_scenario(
    path: Path,
    *,
    runs_root: Path,
    database_url: str | None = None,
    progress: Progress | None = None,
    full_checks: bool = False,
    baseline: bool = False,
) -> Path:
    """Run the scenario file at `path`; write its run folder under `runs_root`; return it.
    `baseline`: then measure raw PostgreSQL doing the same writes (simulator/baseline.py) on
    the same server, and record the ratio."""
    from simulator.outputs import new_run_dir, write_run

    scenario = load_scenario(path)
    started_at = datetime.now(UTC)
    server_url, stop = _database(database_url)
    try:
        engine = Engine(scenario, server_url, full_checks=full_checks)
        # The engine runs one thread per operator; each database round trip drops the GIL.
        # A shorter switch interval hands it back sooner (measured: about 13% faster).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)
        try:
            started = time.perf_counter()
            engine.run(progress)
            wall = time.perf_counter() - started
        finally:
            sys.setswitchinterval(switch_interval)
            engine.close()
        payments = engine.totals["ok"] + engine.totals["failed"]
        raw = None
        if baseline:
            from simulator.baseline import raw_payment_rate

            raw = raw_payment_rate(
                server_url,
                wallets=max(2, sum(len(p.adopted) for p in engine.populations.values())),
                payments=min(max(payments, 1), 200_000),
                batch_size=scenario.payments.batch_size,
            )
    finally:
        stop()
    summary = {
        "name": scenario.meta.name,
        "question": scenario.meta.question,
        "description": scenario.meta.description,
        "seed": scenario.meta.seed,
        "scenario_digest": scenario.digest,
        "operators": engine.codes,
        "currency": scenario.meta.currency,
        "decimals": 2,
        "steps": scenario.steps,
        "step_seconds": scenario.meta.step,
        "settlement_mode": scenario.settlement.mode,
        "payments_total": payments,
        "payments_ok": engine.totals["ok"],
        "payments_failed": engine.totals["failed"],
        "failed_by_reason": dict(sorted(engine.failed_totals.items())),
        "wall_seconds": round(wall, 3),
        "payments_per_second": round(payments / wall, 1) if wall else 0.0,
        "invariants_checked": engine.checks_run,
        "invariants_ok": not engine.checks_failed,
        "invariant_failures": engine.checks_failed[:20],
        "full_checks_every_step": full_checks,
        "started_at": started_at.isoformat(),
        "median_step_payments_per_second": _median(t["payments_per_second"] for t in engine.timing),
        # wall seconds by phase, summed over the steps (timing.csv has them per step)
        "phase_seconds": {
            phase: round(sum(t[f"{phase}_seconds"] for t in engine.timing), 3)
            for phase in ("setup", "payments", "settlement")
        },
    }
    if engine.offline_summary is not None:
        summary["offline"] = engine.offline_summary
    if engine.programmable_summary is not None:
        summary["programmable"] = engine.programmable_summary
        stimulus = engine.programmable_summary.get("stimulus") or {}
        for key in ("velocity_during", "velocity_after"):  # flat: `cbdc scenario compare`
            if stimulus.get(key) is not None:
                summary[f"{key}_stimulus"] = stimulus[key]
    if raw is not None:
        summary["baseline"] = raw
        summary["ratio_to_baseline"] = round(payments / wall / raw["payments_per_second"], 3)
    run_dir = new_run_dir(runs_root, scenario.meta.name, started_at)
    write_run(
        run_dir,
        series=normalise_series(engine.series),
        timing=engine.timing,
        summary=summary,
        scenario_text=scenario.source_text,
    )
    return run_dir


def _median(values: Any) -> float:
    import statistics

    items = list(values)
    return round(statistics.median(items), 1) if items else 0.0


def _database(database_url: str | None) -> tuple[str, Callable[[], None]]:
    """The PostgreSQL server to run on: the given URL, CBDC_DATABASE_URL, or an embedded
    server the engine starts (and stops) in `.cbdc/scenarios`."""
    from cbdc.pg import EmbeddedPostgres
    from cbdc.settings import Settings

    url = database_url or Settings().database_url
    if url:
        return url, lambda: None
    server = EmbeddedPostgres(Path(".cbdc/scenarios").resolve())
    url = server.start()
    return url, server.stop
