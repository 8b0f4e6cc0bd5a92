"""Offline use in the scenario engine, on the real services and PostgreSQL: devices pay each
other offline, sync through their operators' service, compromised devices are caught by the
operators' own adjudication, the cross-tier invariants (purses counted) hold at every step, a
network outage leaves only offline payments, and the same file and seed give the same series."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from simulator.engine import Engine
from simulator.report import render_report
from simulator.run import run_scenario
from simulator.scenario_loading import parse_scenario
from tests.scenario_offline.helpers import SMALL, read_series

DOWN_STEP = 2  # the network is down for step 2 (day 1, 00:00 to 12:00)


def _run(source: str, pg_url: str) -> tuple[Engine, list[dict[str, int]]]:
    engine = Engine(parse_scenario(source), pg_url, full_checks=True)
    try:
        engine.run()
        # what the operators' own records say, read before the databases go
        records = {}
        for code in engine.codes:
            with engine.net.state(code).factory() as session:
                records[code] = session.execute(
                    text(
                        "SELECT (SELECT count(*) FROM offline_double_spends), "
                        "(SELECT coalesce(sum(loss), 0) FROM offline_double_spends), "
                        "(SELECT count(*) FROM offline_devices WHERE status = 'revoked'), "
                        "(SELECT count(*) FROM offline_transfers), "
                        "(SELECT count(*) FROM offline_claims WHERE status = 'accepted'), "
                        "(SELECT count(*) FROM offline_claims WHERE status = 'forwarding')"
                    )
                ).one()
        engine.records = records  # type: ignore[attr-defined]
    finally:
        engine.close()
    series = [{k: int(v) for k, v in row.items()} for row in engine.series]
    return engine, series


def total(series: list[dict[str, int]], column: str) -> int:
    return sum(row[column] for row in series)


@pytest.mark.parametrize("attack", ["clone", "rollback"])
def test_offline_payments_and_double_spends_on_the_real_services(pg_url: str, attack: str) -> None:
    engine, series = _run(SMALL.replace('attack = "clone"', f'attack = "{attack}"'), pg_url)
    assert engine.checks_failed == []  # full checks, every step: purses are CBDC held
    assert engine.checks_run > 6 * 10
    summary = engine.offline_summary
    assert summary is not None
    devices = 66  # every household and merchant
    assert series[-1]["devices"] == devices == summary["devices"]
    assert 0 < summary["compromised_devices"] < devices
    assert total(series, "offline_payments") == summary["payments"] > 100
    assert total(series, "offline_value") == summary["value"] > 0
    assert max(row["purse_balances"] for row in series) > 0
    assert total(series, "offline_syncs") > 50
    # the attack happened and the operators caught it, by their own records only
    assert summary["double_spend_attempts"] > 0
    records = engine.records  # type: ignore[attr-defined]
    detected = sum(r[0] for r in records.values())
    revoked = sum(r[2] for r in records.values())
    assert (
        0 < detected == total(series, "double_spends_detected") == summary["double_spends_detected"]
    )
    assert 0 < revoked == series[-1]["devices_revoked"] <= summary["compromised_devices"]
    assert total(series, "detection_delay_s") > 0
    times = summary["time_to_detection_hours"]
    assert 0 < times["median"] <= times["max"]
    # losses by operator: the series' stock, the operators' records and the summary agree
    for code, (_, loss, *_) in records.items():
        assert series[-1][f"fraud_losses.{code}"] == loss == summary["losses_by_operator"][code]
    # payments to devices at the other operator, brought by the payee, were forwarded to the
    # payer's operator by the outbox jobs and settled there; none is left in flight
    assert sum(r[4] for r in records.values()) > 0
    assert sum(r[5] for r in records.values()) == 0
    assert total(series, "gross_settlement") > 0
    # the day without network: payments only offline, no sync, no wallet loaded
    down = series[DOWN_STEP]
    assert down["offline_syncs"] == 0
    assert down["payments_failed"] == sum(
        value for column, value in down.items() if column.startswith("failed.")
    )
    assert "failed.network_down" not in down or down["failed.network_down"] == 0  # all hold one
    # every payment made is offline (a clone's payments are offline payments the engine did
    # not draw: the attacker's)
    assert 0 < down["payments_ok"] <= down["offline_payments"]
    assert down["purse_balances"] == series[DOWN_STEP - 1]["purse_balances"]  # nothing synced
    # and once it is back, the backlog syncs
    assert series[DOWN_STEP + 1]["offline_syncs"] > 0


def test_network_down_without_offline_devices_fails_every_payment(pg_url: str) -> None:
    source = SMALL[: SMALL.index("[offline]")] + SMALL[SMALL.index("[[events]]") :]
    engine, series = _run(source, pg_url)
    assert engine.checks_failed == []
    assert engine.offline_summary is None
    assert "offline_payments" not in series[0]  # no offline columns without [offline]
    down = series[DOWN_STEP]
    assert down["payments_ok"] == 0 and down["failed.network_down"] == down["payments_failed"] > 0
    assert series[DOWN_STEP + 1]["payments_ok"] > 0


def test_same_file_and_seed_give_the_same_series(pg_url: str, tmp_path: Path) -> None:
    path = tmp_path / "offline.toml"
    path.write_text(SMALL)
    first = run_scenario(path, runs_root=tmp_path / "runs", database_url=pg_url)
    second = run_scenario(path, runs_root=tmp_path / "runs", database_url=pg_url)
    assert (first / "series.csv").read_bytes() == (second / "series.csv").read_bytes()
    assert sum(int(row["offline_payments"]) for row in read_series(first)) > 0
    # the report: its offline section and plots
    report = render_report(first).read_text()
    summary = json.loads((first / "summary.json").read_text())["offline"]
    assert "## Offline payments" in report
    assert f"| offline payments | {summary['payments']:,} |" in report
    for plot in ("offline_payments", "offline_devices", "offline_value", "time_to_detection"):
        assert f"![{plot.replace('_', ' ')}" in report.lower()
        assert (first / "plots" / f"{plot}.png").stat().st_size > 1000
    other = tmp_path / "other.toml"
    other.write_text(SMALL.replace("seed = 5", "seed = 6"))
    third = run_scenario(other, runs_root=tmp_path / "runs", database_url=pg_url)
    assert read_series(third) != read_series(first)
