"""Escrow in process: create, release (partial, whole), refund by the arbiter or the payee,
the wallet's locked value, histories, idempotent orders; every scenario ends with the audits
(conservation: escrow accounts hold exactly what the escrows record)."""

from __future__ import annotations

from typing import Any

from tests.clocks import operator_clock
from tests.helpers import refused
from tests.programmable.escrow_helpers import at, audit_all, post, signed_escrow, signed_release


def test_create_release_partially_then_payee_gives_the_rest_back(network: Any) -> None:
    clock = operator_clock(network)
    payer = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    payee = network.open_wallet("BKA1")
    escrow = payer.create_escrow(payee.wallet_id, 300_00, deadline=at(clock, 3600), memo="sofa")
    assert (escrow.status, escrow.amount, escrow.released, escrow.remaining) == (
        "open",
        300_00,
        0,
        300_00,
    )
    assert escrow.payer == payer.wallet_id and escrow.arbiter is None
    info = payer.balance()
    assert (info.balance, info.locked, info.spent_today) == (700_00, 300_00, 300_00)

    released = payer.release_escrow(escrow.escrow_id, 100_00)
    assert (released.status, released.released, released.remaining) == ("open", 100_00, 200_00)
    assert released.payment is not None and released.payment["status"] == "completed"
    assert payee.balance().balance == 100_00
    assert payer.balance().locked == 200_00

    back = payee.refund_escrow(escrow.escrow_id)
    assert (back.status, back.released, back.refunded, back.remaining) == (
        "refunded",
        100_00,
        200_00,
        0,
    )
    info = payer.balance()
    assert (info.balance, info.locked, info.spent_today) == (900_00, 0, 100_00)
    shown = payer.escrow(escrow.escrow_id)
    assert [(e.kind, e.amount) for e in shown.events] == [("release", 100_00), ("refund", 200_00)]
    assert [e.escrow_id for e in payee.escrows()] == [escrow.escrow_id]

    kinds = [(i.kind, i.amount, i.counterparty) for i in payer.history().items]
    assert ("escrow_lock", -300_00, payee.wallet_id) in kinds
    assert ("payment", -100_00, payee.wallet_id) in kinds  # the release, a payment of the payer
    assert ("escrow_unlock", 100_00, None) in kinds
    assert ("escrow_refund", 200_00, None) in kinds
    assert [i.amount for i in payee.history().items if i.kind == "payment"] == [100_00]
    reports = audit_all(network)
    assert reports["BKA1"]["escrows"] == 0


def test_whole_release_closes_it_and_orders_are_idempotent(network: Any) -> None:
    clock = operator_clock(network)
    payer = network.open_wallet("BKA1", deposit=500_00, load=500_00)
    payee = network.open_wallet("BKA1")
    signed = signed_escrow(payer, payee.wallet_id, 200_00, deadline=at(clock, 600))
    first = post(network, "BKA1", "/v1/escrows", signed)
    again = post(network, "BKA1", "/v1/escrows", signed)
    assert first.status_code == again.status_code == 201
    assert first.json()["escrow_id"] == again.json()["escrow_id"]
    assert again.json()["replayed"] is True
    escrow_id = first.json()["escrow_id"]
    assert payer.balance().balance == 300_00  # locked once

    release = signed_release(payer, escrow_id, 200_00)
    one = post(network, "BKA1", f"/v1/escrows/{escrow_id}/release", release)
    two = post(network, "BKA1", f"/v1/escrows/{escrow_id}/release", release)
    assert one.status_code == two.status_code == 200, one.text
    assert one.json()["status"] == "released" and two.json()["replayed"] is True
    assert one.json()["payment"]["payment_id"] == two.json()["payment"]["payment_id"]
    assert payee.balance().balance == 200_00
    assert payer.payment(one.json()["payment"]["payment_id"]).status == "completed"
    refused(lambda: payer.release_escrow(escrow_id, 1), 409, "escrow_closed")
    refused(lambda: payee.refund_escrow(escrow_id), 409, "escrow_closed")
    audit_all(network)


def test_arbiter_decides(network: Any) -> None:
    clock = operator_clock(network)
    payer = network.open_wallet("BKA1", deposit=500_00, load=500_00)
    payee = network.open_wallet("BKA1")
    arbiter = network.open_wallet("BKA1")
    outsider = network.open_wallet("BKA1")
    escrow = payer.create_escrow(
        payee.wallet_id, 400_00, deadline=at(clock, 600), arbiter=arbiter.wallet_id
    )
    assert escrow.arbiter == arbiter.wallet_id
    refused(lambda: payer.release_escrow(escrow.escrow_id, 10_00), 403, "not_the_arbiter")
    refused(lambda: payee.release_escrow(escrow.escrow_id, 10_00), 403, "not_the_arbiter")
    refused(lambda: payer.refund_escrow(escrow.escrow_id), 403, "not_an_escrow_party")
    refused(lambda: outsider.escrow(escrow.escrow_id), 404, "unknown_escrow")
    assert arbiter.escrow(escrow.escrow_id).remaining == 400_00
    arbiter.release_escrow(escrow.escrow_id, 150_00)
    done = arbiter.refund_escrow(escrow.escrow_id)
    assert (done.status, done.released, done.refunded) == ("refunded", 150_00, 250_00)
    assert payee.balance().balance == 150_00
    assert payer.balance().balance == 100_00 + 250_00
    assert network.staff("BKA1").request("GET", f"/v1/escrows/{escrow.escrow_id}")["events"]
    audit_all(network)
