"""Net settlement under lost answers, refusals and liquidity shortfalls."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from operators.settlement import netting
from tests.clocks import operator_clock
from tests.net_settlement.helpers import (
    LossyTransport,
    cb_state,
    close,
    conserved,
    cycle,
    drained,
    operations,
    settle_all,
    submit_all,
)


@pytest.mark.parametrize("path", ["/v1/clearing/submissions", "/v1/clearing/obligations/"])
def test_lost_answers_delay_but_never_duplicate(net: Any, path: str) -> None:
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1")
    client = net.state("BKA1").ctx.central_bank.client
    real_http = client.http
    lossy = LossyTransport(net.cb._transport, path, lose=2)
    client.http = httpx.Client(base_url="http://testserver", transport=lossy)
    clock = operator_clock(net)
    try:
        alice.pay(bob.wallet_id, 900_00)
        for _ in range(3):
            cycle(net)
            clock.advance(0.6)  # retries after backoff
    finally:
        client.http = real_http
    drained(net)
    assert lossy.lost == 2
    assert bob.balance().balance == 900_00
    assert alice.balance().balance == 4_100_00
    assert operations(net)["net_settlement"] == {"count": 1, "amount": 900_00}
    conserved(net)


def test_a_pair_applied_before_the_lost_payment_is_retried(net: Any) -> None:
    """The debtor's payment went through but its answer was lost; the pair is applied from the
    clearing house's record before the payment job is retried: the job then has nothing left
    to do, and no vault token stays reserved."""
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1")
    client = net.state("BKA1").ctx.central_bank.client
    real_http = client.http
    lossy = LossyTransport(net.cb._transport, "/v1/clearing/", suffix="/pay", lose=1)
    client.http = httpx.Client(base_url="http://testserver", transport=lossy)
    try:
        alice.pay(bob.wallet_id, 800_00)
        submit_all(net)
        close(net)
        netting.sync(net.state("BKA1"))  # pays; the answer is lost; retried after a backoff
        assert lossy.lost == 1
        netting.sync(net.state("BKA1"))  # sees the pair settled and applies it
    finally:
        client.http = real_http
    with net.state("BKA1").factory() as s:
        jobs = dict(
            s.execute(text("SELECT kind, status FROM outbox WHERE kind LIKE 'net_%'")).all()
        )
        reserved = s.execute(
            text("SELECT count(*) FROM vault_tokens WHERE status = 'reserved'")
        ).scalar_one()
    assert jobs == {"net_submit": "done", "net_pay": "done", "net_apply": "done"}
    assert reserved == 0
    operator_clock(net).advance(0.6)
    drained(net)
    assert bob.balance().balance == 800_00
    assert operations(net)["net_settlement"]["count"] == 1
    conserved(net)


def test_a_refused_submission_refunds_the_payers(net: Any) -> None:
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1")
    engine = cb_state(net).engine
    with engine.begin() as conn:
        conn.execute(text("UPDATE operators SET status = 'suspended' WHERE code = 'BKB1'"))
    receipt = alice.pay(bob.wallet_id, 1_000_00)
    submit_all(net)
    status = alice.payment(receipt.payment_id)
    assert (status.status, status.failure) == ("failed", "operator_suspended")
    info = alice.balance()
    assert (info.balance, info.spent_today) == (5_000_00, 0)
    with engine.begin() as conn:
        conn.execute(text("UPDATE operators SET status = 'active' WHERE code = 'BKB1'"))
    alice.pay(bob.wallet_id, 1_000_00)
    drained(net)
    assert bob.balance().balance == 1_000_00
    conserved(net)


def test_a_liquidity_shortfall_is_covered_by_issuance_and_recorded(net: Any) -> None:
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1")
    alice.pay(bob.wallet_id, 2_000_00)
    submit_all(net)
    close(net)
    with net.state("BKA1").engine.begin() as conn:  # every token is held by something else
        conn.execute(
            text(
                "UPDATE vault_tokens SET status = 'reserved', reserved_for = 'test-hold' "
                "WHERE status = 'held'"
            )
        )
    issued = net.admin.request("GET", "/v1/admin/audit")["issued"]
    settle_all(net)
    assert bob.balance().balance == 2_000_00
    assert net.admin.request("GET", "/v1/admin/audit")["issued"] == issued + 2_000_00
    with net.state("BKA1").factory() as s:
        assert s.execute(text("SELECT shortfall FROM net_obligations")).scalar_one() == 2_000_00
    with net.state("BKA1").engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE vault_tokens SET status = 'held', reserved_for = NULL "
                "WHERE reserved_for = 'test-hold'"
            )
        )
    drained(net)
    conserved(net)
