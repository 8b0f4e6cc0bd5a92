"""A cross-operator offline payment its payee's operator returns (or the central bank refuses):
the payer gets back what its purse held, what was recovered from its wallet goes back to the
wallet, the float gets back what it paid, and the fraud-loss memorandum forgets the loss."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tests.helpers import audits_ok, drain
from tests.offline.helpers import balance, fund, purse, register, scalar, sync


def _freeze(network: Any, code: str, wallet_id: str) -> None:
    with network.state(code).engine.begin() as conn:
        conn.execute(text("UPDATE wallets SET status = 'frozen' WHERE id = :w"), {"w": wallet_id})


@pytest.mark.parametrize("mode", ["rtgs", "net"])
def test_a_returned_overspend_gives_back_only_what_the_purse_held(network: Any, mode: str) -> None:
    from tests.net_settlement.helpers import drained

    for code in ("BKA1", "BKB1"):
        network.state(code).ctx.settlement_mode = mode
    alice = network.open_wallet("BKA1", deposit=130_00, load=130_00)
    bob, carol = network.open_wallet("BKB1"), network.open_wallet("BKB1")
    pa = register(network, "BKA1", alice)
    pb, pc = register(network, "BKB1", bob, "b"), register(network, "BKB1", carol, "c")
    fund(network, "BKA1", pa, 100_00)  # wallet 30.00, purse 100.00
    clone = pa.clone()
    now = network.state("BKA1").ctx.now()
    pb.receive(pa.pay(pb.device_id, bob.wallet_id, 80_00, now), now)
    pc.receive(clone.pay(pc.device_id, carol.wallet_id, 90_00, now), now)
    _freeze(network, "BKB1", carol.wallet_id)

    sync(network, "BKA1", pa)
    drained(network) if mode == "net" else drain(network)
    sync(network, "BKB1", pc)  # the clone's payment: 20.00 purse, 30.00 wallet, 40.00 float
    for _ in range(3):  # forwarded, settled, returned, refunded
        drained(network) if mode == "net" else drain(network)

    assert balance(network, "BKB1", bob.wallet_id) == 80_00
    assert balance(network, "BKB1", carol.wallet_id) == 0
    # returned: the 20.00 the purse still held and the 30.00 taken from the wallet come back
    # to the wallet; the 40.00 the float paid goes back to the float (no loss remains)
    assert balance(network, "BKA1", alice.wallet_id) == 50_00
    assert purse(network, "BKA1", pa.device_id) == 0
    sql = "SELECT status FROM orders WHERE kind = 'offline_payment' AND amount = 9000"
    assert scalar(network, "BKA1", sql) == "returned"
    assert scalar(network, "BKA1", "SELECT loss + recovered FROM offline_double_spends") == 0
    assert scalar(network, "BKA1", "SELECT status FROM offline_devices") == "revoked"
    _, reports = audits_ok(network)
    assert reports["BKA1"]["offline"]["fraud_losses"] == 0
    assert reports["BKA1"]["in_transit_out"] == 0
    assert reports["BKB1"]["returns_pending"] == 0


def test_a_refused_settlement_of_offline_payments_refunds_without_loss(network: Any) -> None:
    """The central bank refuses to settle to a suspended operator: both payments of a device
    and of its clone come back; the wallet gets what the purse held and what was recovered,
    the float what it paid, and the wallet's online spending counters do not move."""
    alice = network.open_wallet("BKA1", deposit=130_00, load=130_00)
    dave = network.open_wallet("BKA1")
    bob = network.open_wallet("BKB1")
    pa, pb = register(network, "BKA1", alice), register(network, "BKB1", bob)
    fund(network, "BKA1", pa, 100_00)
    assert alice.pay(dave.wallet_id, 10_00).status == "completed"  # wallet 20.00, spent 10.00
    clone = pa.clone()
    now = network.state("BKA1").ctx.now()
    pb.receive(pa.pay(pb.device_id, bob.wallet_id, 80_00, now), now)
    clone.pay(pb.device_id, bob.wallet_id, 90_00, now)  # to a payee that never syncs it
    engine = network.cb_app.state.cb.engine
    with engine.begin() as conn:
        conn.execute(text("UPDATE operators SET status = 'suspended' WHERE code = 'BKB1'"))

    sync(network, "BKA1", pa)
    sync(network, "BKA1", clone)  # counter reuse: 20.00 purse, 20.00 wallet, 50.00 float
    drain(network)

    assert balance(network, "BKA1", alice.wallet_id) == 120_00  # 130.00 - 10.00 paid online
    assert purse(network, "BKA1", pa.device_id) == 0
    statuses = "SELECT string_agg(status, ',') FROM orders WHERE kind = 'offline_payment'"
    assert scalar(network, "BKA1", statuses) == "failed,failed"
    assert alice.balance().spent_today == 10_00
    assert scalar(network, "BKA1", "SELECT loss + recovered FROM offline_double_spends") == 0
    with engine.begin() as conn:
        conn.execute(text("UPDATE operators SET status = 'active' WHERE code = 'BKB1'"))
    _, reports = audits_ok(network)
    assert reports["BKA1"]["offline"]["fraud_losses"] == 0
    assert reports["BKA1"]["in_transit_out"] == 0
