"""`cbdc bench` end to end at a tiny setting: a fresh network, seeding, the pgbench baseline, a
short Locust run, the audit, and the JSON and Markdown it writes. No timing is asserted: the
figures must exist, be consistent with each other and come from real work."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.e2e.conftest import cli_env, drop_databases, free_port_base, run_cli


def test_bench_smoke(pg_url: str, tmp_path: Path) -> None:
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    out = tmp_path / "run"
    env = cli_env(CBDC_DATABASE_URL=pg_url, CBDC_DB_PREFIX=prefix)
    try:
        result = run_cli(
            "bench",
            "--duration", "6",
            "--users", "4",
            "--wallets", "300",
            "--workers", "1",
            "--baseline-seconds", "1",
            "--baseline-clients", "2",
            "--data-dir", str(tmp_path / "net"),
            "--port", str(free_port_base(3)),
            "--out", str(out),
            timeout=300,
            env=env,
        )  # fmt: skip
    finally:
        drop_databases(pg_url, prefix)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "signed HTTP payments" in result.stdout
    assert "all invariants hold" in result.stdout

    report = json.loads((out / "bench.json").read_text())
    api = report["api"]
    assert api["payments"] > 0 and api["payments_per_s"] > 0
    assert api["errors"] == 0
    assert {"pay same-operator", "pay cross-operator"} <= set(api["requests"])
    # Every payment Locust counted has an outcome tallied by the users, and no other.
    assert sum(api["outcomes"].values()) == api["payments"]
    batch = report["batch_api"]  # one signed order per seeded payer, 300 per operator
    assert batch["orders"] == 2 * 300 and batch["accepted"] > 0
    assert batch["accepted"] + batch["refused"] == batch["orders"]
    for mode in ("statements", "function", "batched"):
        assert report["baseline"]["modes"][mode]["transfers_per_s"] > 0
    assert report["ratio_to_function_baseline"] > 0
    assert report["seeding"]["wallets"] == 2 * 300
    assert set(report["cpu"]) == {"services", "database", "load generator"}
    assert all(v["cpu_seconds"] > 0 for v in report["cpu"].values())
    # CPU per payment: services by service, database by database, Locust's own account.
    per = report["cpu_ms_per_payment"]
    assert per["payments"] == api["payments"]
    assert all(per[k] > 0 for k in ("services", "database", "load_generator"))
    services = set(per["services_by_process"])
    assert "central bank" in services and len(services) == 3  # and the two operators
    assert sum(1 for s in services if s.startswith("operator ")) == 2
    assert services <= set(per["database_by_database"])  # each service's own database
    assert per["load_generator_source"] == "Locust processes, test start to stop"
    assert per["load_generator_per_request"] > 0
    assert per["load_generator_whole_process"] > 0
    assert set(per["central_bank_per_cross_operator_payment"]) == {"service", "database"}
    assert set(per["baseline_database_per_transfer"]) == {"statements", "function", "batched"}
    locust_cpu = api["load_generator_cpu"]
    assert locust_cpu["cpu_seconds"] > 0 and locust_cpu["processes"] == api["processes"]
    assert len(locust_cpu["per_process_cpu_seconds"]) == api["processes"]
    assert locust_cpu["test_seconds"] > 0
    batch_per = batch["cpu_ms_per_payment"]
    assert batch_per["payments"] == batch["orders"]
    assert all(batch_per[k] > 0 for k in ("services", "database", "load_generator"))
    assert report["audit"]["ok"] is True
    markdown = (out / "bench.md").read_text()
    assert "signed HTTP payments" in markdown and "pgbench" in markdown
    assert "| CPU per payment | ms |" in markdown and "load generator (Locust)" in markdown
    assert "CPU per payment" in result.stdout
    assert (out / "locust.html").exists() and (out / "locust_stats.csv").exists()
