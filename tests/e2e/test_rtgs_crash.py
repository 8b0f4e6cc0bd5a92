"""Batched gross settlement survives a crash of the payer's operator between the central
bank's answer and its application (issue 13: "kills the payer's operator between the batched
settlement call and its application, and shows each payment settled exactly once").

A network of its own. Cross-operator payments are accepted while the central bank is down
(`pending_settlement`, committed with their `rtgs_batch` outbox job). The payer's operator runs
with `CBDC_FAULT_POINT=rtgs_after_settle_call`: once the central bank is back, its settler
gathers the payments into one batch, the central bank settles every item, and the process
SIGKILLs itself before applying the answer. Restarted without the fault, the outbox runs the
batch again with the same references: the central bank answers from its record (no second
settlement), the payer applies it once, the payee is credited once, the audit holds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from orchestration.audit import run_audit
from tests.e2e.conftest import LiveNetwork, open_wallet, own_network
from tests.helpers import wait_until
from wallets.client import OperatorClient, WalletClient

PAYMENTS = 6


@pytest.fixture
def rtgs_network(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNetwork]:
    with own_network(pg_url, tmp_path_factory, "rtgs") as live:
        yield live


def _wallet(live: LiveNetwork, code: str, load: int) -> WalletClient:
    return open_wallet(live, code, load=load, name="rtgs")


def _wait(predicate: Callable[[], bool], timeout: float = 90) -> bool:
    return wait_until(predicate, timeout)


def _scalar(url: str, sql: str, **params: object) -> Any:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar_one()
    finally:
        engine.dispose()


def test_payer_killed_between_batch_settlement_and_its_application(
    rtgs_network: LiveNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    live, net = rtgs_network, rtgs_network.network
    payer = _wallet(live, "BKA1", load=5_000_00)
    payee = _wallet(live, "BKB1", load=0)
    a_db = live.config.operator("BKA1").database_url
    cb_db = live.config.central_bank.database_url

    # The payer's operator runs with the fault armed; the central bank is down.
    net.kill("operator_BKA1")
    monkeypatch.setenv("CBDC_FAULT_POINT", "rtgs_after_settle_call")
    net.restart("operator_BKA1")
    monkeypatch.delenv("CBDC_FAULT_POINT")
    net.kill("central_bank")
    payer = OperatorClient.connect(live.config.operator("BKA1").url).wallet(
        payer.wallet_id, payer.key
    )
    receipts = [payer.pay(payee.wallet_id, 100_00 + i) for i in range(PAYMENTS)]
    assert {r.status for r in receipts} == {"pending_settlement"}  # acknowledged, committed
    total = sum(r.amount for r in receipts)

    # The central bank comes back: the settler's batch is settled there, then BKA1 dies.
    net.restart("central_bank")
    process = dict(net.processes)["operator_BKA1"]
    assert _wait(lambda: process.poll() is not None, timeout=60), "the fault never fired"
    # The batch the settler (or the outbox worker) sent: settled at the central bank...
    settled = _scalar(
        cb_db,
        "SELECT coalesce(array_agg(reference), '{}') FROM operations "
        "WHERE kind = 'settlement' AND reference LIKE 'pay:%'",
    )
    assert isinstance(settled, list) and settled, "nothing was settled before the crash"
    unapplied = _scalar(
        a_db,
        "SELECT count(*) FROM orders WHERE status = 'pending_settlement' "
        "AND 'pay:' || id::text = ANY(CAST(:refs AS text[]))",
        refs=settled,
    )
    assert unapplied == len(settled)  # ...and not applied by the payer's operator

    # Restarted without the fault: the outbox finishes the batch, exactly once.
    net.kill("operator_BKA1")  # forget the dead process
    net.restart("operator_BKA1")
    payer = OperatorClient.connect(live.config.operator("BKA1").url).wallet(
        payer.wallet_id, payer.key
    )
    assert _wait(lambda: {payer.payment(r.payment_id).status for r in receipts} == {"delivered"}), [
        payer.payment(r.payment_id).status for r in receipts
    ]
    payee = OperatorClient.connect(live.config.operator("BKB1").url).wallet(
        payee.wallet_id, payee.key
    )
    assert payee.balance().balance == total
    assert payer.balance().balance == 5_000_00 - total
    for receipt in receipts:  # one settlement per payment at the central bank
        assert (
            _scalar(
                cb_db,
                "SELECT count(*) FROM operations WHERE kind = 'settlement' AND reference = :r",
                r=f"pay:{receipt.payment_id}",
            )
            == 1
        )
    assert _scalar(cb_db, "SELECT count(*) FROM operations WHERE kind = 'settlement_batch'") >= 1
    report = run_audit(live.config)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]
    assert report["failed_outbox_jobs"] == {"BKA1": 0, "BKB1": 0}
