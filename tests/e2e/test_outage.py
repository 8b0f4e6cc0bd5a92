"""Crashes and outages delay money but never lose or duplicate it.

A network of its own (its processes are killed here): cross-operator payments are made while
the central bank is down, the payer's operator crashes with settlements queued in its outbox,
the payee's operator is down when settlements are delivered. After everything is back, every
payment is delivered exactly once and the cross-tier audit holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from orchestration.audit import run_audit
from tests.e2e.conftest import LiveNetwork, open_wallet, own_network
from tests.helpers import wait_until
from wallets.client import OperatorClient, WalletClient


@pytest.fixture
def crash_network(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNetwork]:
    with own_network(pg_url, tmp_path_factory, "outage") as live:
        yield live


def _wallet(live: LiveNetwork, code: str, load: int) -> WalletClient:
    return open_wallet(live, code, load=load, name="outage")


def _wait(predicate: Callable[[], bool], timeout: float = 60) -> bool:
    return wait_until(predicate, timeout)


def test_outages_delay_but_never_lose_or_duplicate(crash_network: LiveNetwork) -> None:
    live, net = crash_network, crash_network.network
    payer = _wallet(live, "BKA1", load=5_000_00)
    neighbour = _wallet(live, "BKA1", load=0)
    payee = _wallet(live, "BKB1", load=0)

    # 1. The central bank is down: cross-operator payments are accepted and wait.
    net.kill("central_bank")
    pending = [payer.pay(payee.wallet_id, 100_00 + i) for i in range(3)]
    assert {r.status for r in pending} == {"pending_settlement"}
    assert payer.balance().balance == 5_000_00 - sum(r.amount for r in pending)
    # Same-operator payments do not need the central bank at all.
    assert payer.pay(neighbour.wallet_id, 50_00).status == "completed"

    # 2. The payer's operator crashes with those settlements in its outbox.
    net.kill("operator_BKA1")
    # 3. The central bank comes back, but the payee's operator goes down.
    net.restart("central_bank")
    net.kill("operator_BKB1")
    net.restart("operator_BKA1")
    payer = OperatorClient.connect(live.config.operator("BKA1").url).wallet(
        payer.wallet_id, payer.key
    )
    assert _wait(lambda: {payer.payment(r.payment_id).status for r in pending} == {"settled"}), [
        payer.payment(r.payment_id).status for r in pending
    ]
    # Settled at the central bank, not yet delivered: the payee has nothing yet.

    # 4. The payee's operator comes back; the outbox delivers each settlement once.
    net.restart("operator_BKB1")
    assert _wait(lambda: {payer.payment(r.payment_id).status for r in pending} == {"delivered"})
    payee = OperatorClient.connect(live.config.operator("BKB1").url).wallet(
        payee.wallet_id, payee.key
    )
    assert payee.balance().balance == sum(r.amount for r in pending)
    received = [i for i in payee.history().items if i.amount > 0]
    assert sorted(i.amount for i in received) == sorted(r.amount for r in pending)

    report = run_audit(live.config)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]
    assert report["failed_outbox_jobs"] == {"BKA1": 0, "BKB1": 0}
