"""Escrow to a payee at another operator: a release settles like any payment of the payer (RTGS
through the central bank); one the payee's operator cannot take comes back to the payer's
WALLET by the one refund rule (not into the escrow); the audits hold throughout."""

from __future__ import annotations

from typing import Any

from cbdc.addresses import make_wallet_id
from tests.clocks import operator_clock
from tests.helpers import drain
from tests.programmable.escrow_helpers import at, audit_all


def test_cross_operator_release_settles(network: Any) -> None:
    clock = operator_clock(network)
    payer = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    payee = network.open_wallet("BKB1")
    escrow = payer.create_escrow(payee.wallet_id, 600_00, deadline=at(clock, 600))
    reports = audit_all(network)
    assert reports["BKA1"]["escrows"] == 600_00 and reports["BKA1"]["escrows_open"] == 1

    released = payer.release_escrow(escrow.escrow_id, 250_00)
    assert released.payment is not None and released.payment["route"] == "cross"
    drain(network)
    assert payer.payment(released.payment["payment_id"]).status == "delivered"
    assert payee.balance().balance == 250_00
    received = [i for i in payee.history().items if i.amount == 250_00]
    assert received and received[0].counterparty not in (None, payer.wallet_id)  # an alias
    payer.release_escrow(escrow.escrow_id, 350_00)
    drain(network)
    assert payee.balance().balance == 600_00
    assert payer.escrow(escrow.escrow_id).status == "released"
    reports = audit_all(network)
    assert reports["BKA1"]["escrows"] == 0 and reports["BKA1"]["in_transit_out"] == 0


def test_a_release_the_payee_cannot_take_comes_back_to_the_payer_wallet(network: Any) -> None:
    clock = operator_clock(network)
    payer = network.open_wallet("BKA1", wallet_class="II", deposit=20_000_00, load=20_000_00)
    payee = network.open_wallet("BKB1", deposit=10_000_00, load=9_999_00)  # class IV: near cap
    nobody = make_wallet_id("BKB1", 424_242)  # valid, no such wallet at BKB1
    capped = payer.create_escrow(payee.wallet_id, 5_000_00, deadline=at(clock, 600))
    lost = payer.create_escrow(nobody, 1_000_00, deadline=at(clock, 600))
    assert payer.balance().balance == 14_000_00

    first = payer.release_escrow(capped.escrow_id, 5_000_00)
    second = payer.release_escrow(lost.escrow_id, 400_00)
    network.run_jobs()
    drain(network)
    for released, reason in ((first, "payee_balance_cap_exceeded"), (second, "unknown_wallet")):
        assert released.payment is not None
        status = payer.payment(released.payment["payment_id"])
        assert (status.status, status.failure) == ("returned", reason)
    info = payer.balance()
    # returned to the wallet; the released escrow stays released; the other keeps its rest
    assert (info.balance, info.locked) == (14_000_00 + 5_000_00 + 400_00, 600_00)
    assert payer.escrow(capped.escrow_id).status == "released"
    assert payer.escrow(lost.escrow_id).remaining == 600_00
    assert payee.balance().balance == 9_999_00
    reports = audit_all(network)
    assert reports["BKA1"]["escrows"] == 600_00
    assert reports["BKA1"]["in_transit_out"] == reports["BKB1"]["returns_pending"] == 0
