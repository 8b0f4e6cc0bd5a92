"""The central bank has one clock (`CentralBankState.clock`): with a simulated clock set, every
time it stamps, in its answers and in its database, is that clock's, not the wall clock's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from cbdc.clock import iso
from tests.central_bank_api.helpers import issue, operator_client

MOMENT = datetime(2031, 5, 17, 9, 30, tzinfo=UTC)  # far from the wall clock


def test_issuance_and_settlement_are_stamped_by_the_central_banks_clock(network: Any) -> None:
    network.cb_app.state.cb.clock = lambda: MOMENT
    bka = operator_client(network, "BKA1")
    issued = issue(bka, 7_00)
    assert issued["receipt"]["document"]["at"] == iso(MOMENT)
    assert {t["issued_at"] for t in issued["tokens"]} == {iso(MOMENT)}
    settled = bka.request(
        "POST",
        "/v1/settlements",
        {
            "payee_operator": "BKB1",
            "amount": 3_00,
            "serials": [t["serial"] for t in issued["tokens"]],
            "reference": f"clock-{uuid.uuid4()}",
        },
        idempotency_key=f"clock-{uuid.uuid4()}",
    )
    assert settled["receipt"]["document"]["settled_at"] == iso(MOMENT)
    with network.cb_app.state.cb.factory() as session:
        for sql in (
            "SELECT DISTINCT issued_at FROM tokens WHERE created_by = ANY(CAST(:ops AS uuid[]))",
            "SELECT DISTINCT spent_at FROM tokens WHERE spent_by = ANY(CAST(:ops AS uuid[]))",
            "SELECT DISTINCT created_at FROM operations WHERE id = ANY(CAST(:ops AS uuid[]))",
            "SELECT DISTINCT j.created_at FROM journal_entries j JOIN operations o "
            "ON o.entry_id = j.id WHERE o.id = ANY(CAST(:ops AS uuid[]))",
        ):
            ops = [issued["operation_id"], settled["settlement_id"]]
            assert session.execute(text(sql), {"ops": ops}).scalars().all() == [MOMENT], sql


def test_aml_reports_are_received_and_bounded_by_the_central_banks_clock(network: Any) -> None:
    network.cb_app.state.cb.clock = lambda: MOMENT
    wallet = network.open_wallet("BKA1").wallet_id
    body = {
        "report_id": str(uuid.uuid4()),
        "wallet": wallet,
        "rule": "velocity",
        "amount": 1_000_00,
        "details": {"count": 20, "window_minutes": 60},
        "occurred_at": iso(MOMENT - timedelta(minutes=1)),  # years ahead of the wall clock
    }
    assert network.state("BKA1").ctx.central_bank.report_alert(body)["stored"] is True
    alerts = network.admin.request("GET", "/v1/analysis/alerts")["alerts"]
    assert [a["received_at"] for a in alerts] == [iso(MOMENT)]
