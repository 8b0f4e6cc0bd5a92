"""Helpers for the scenario output tests: synthetic runs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from simulator.outputs import (
    new_run_dir,
    write_run,
)

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
