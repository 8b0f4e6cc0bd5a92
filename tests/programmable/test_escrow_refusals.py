"""Every refusal of the escrow routes: its status and stable problem code, and no partial write
(balances, the wallet's locked value and the audits as before)."""

from __future__ import annotations

from typing import Any

from cbdc.addresses import make_wallet_id
from tests.clocks import operator_clock
from tests.helpers import assert_problem, refused
from tests.programmable.escrow_helpers import at, audit_all, post, signed_escrow, signed_release
from wallets.orders import escrow_refund_order, sign_order


def test_create_refusals_leave_nothing(network: Any) -> None:
    clock = operator_clock(network)
    payer = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    payee = network.open_wallet("BKA1")
    other = network.open_wallet("BKB1")
    soon = at(clock, 600)

    def create(amount: int = 100_00, to: str = payee.wallet_id, **kw: Any) -> Any:
        kw.setdefault("deadline", soon)
        return post(network, "BKA1", "/v1/escrows", signed_escrow(payer, to, amount, **kw))

    cases = [
        (create(deadline=at(clock, -1)), 422, "escrow_bad_deadline"),
        (create(deadline=at(clock, 367 * 86400)), 422, "escrow_bad_deadline"),
        (create(deadline="tomorrow"), 422, "validation_error"),
        (create(deadline="2030-01-01T00:00:00"), 422, "validation_error"),  # no zone
        (create(arbiter=other.wallet_id), 422, "escrow_bad_arbiter"),  # not at the payer's
        (create(arbiter=payee.wallet_id), 422, "escrow_bad_arbiter"),
        (create(arbiter=make_wallet_id("BKA1", 999_999)), 422, "escrow_bad_arbiter"),
        (create(2_000_00), 422, "insufficient_funds"),
        (create(to=payer.wallet_id), 422, "self_payment"),
        (create(to=make_wallet_id("BKA1", 888_888)), 404, "unknown_wallet"),
        (create(to=make_wallet_id("ZZZ9", 1)), 422, "unknown_payee_operator"),
        (create(to="BKA1" + "0" * 16), 422, "invalid_wallet_id"),
    ]
    for response, status, code in cases:
        assert_problem(response, status, code)
    wrong_currency = signed_escrow(payer, payee.wallet_id, 1_00, deadline=soon)
    wrong_currency["order"]["currency"] = "USD"
    wrong_currency = sign_order(payer.key, wrong_currency["order"])
    assert_problem(post(network, "BKA1", "/v1/escrows", wrong_currency), 422, "currency_mismatch")
    forged = signed_escrow(payee, payee.wallet_id, 1_00, deadline=soon)
    forged["order"]["payer"] = payer.wallet_id  # signed by another key
    assert_problem(post(network, "BKA1", "/v1/escrows", forged), 401, "bad_signature")
    extra = signed_escrow(payer, payee.wallet_id, 1_00, deadline=soon)
    extra["order"]["surprise"] = 1
    assert_problem(post(network, "BKA1", "/v1/escrows", extra), 422)
    single = payer.balance().limits.single_payment
    if single is not None and single < 1_000_00:
        assert_problem(create(single + 1), 422, "single_payment_limit_exceeded")

    info = payer.balance()
    assert (info.balance, info.locked, info.spent_today) == (1_000_00, 0, 0)
    assert payer.escrows() == []
    audit_all(network)


def test_a_refused_escrow_order_stays_refused(network: Any) -> None:
    clock = operator_clock(network)
    payer = network.open_wallet("BKA1", deposit=1_000_00, load=100_00)
    payee = network.open_wallet("BKA1")
    signed = signed_escrow(payer, payee.wallet_id, 500_00, deadline=at(clock, 600))
    assert_problem(post(network, "BKA1", "/v1/escrows", signed), 422, "insufficient_funds")
    payer.load(900_00)
    assert_problem(post(network, "BKA1", "/v1/escrows", signed), 409, "order_already_refused")
    assert payer.balance().balance == 1_000_00


def test_release_and_refund_refusals(network: Any) -> None:
    clock = operator_clock(network)
    payer = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    payee = network.open_wallet("BKA1")
    escrow = payer.create_escrow(payee.wallet_id, 300_00, deadline=at(clock, 60))
    eid = escrow.escrow_id
    refused(lambda: payer.release_escrow(eid, 300_01), 409, "escrow_amount_exceeds_remaining")
    refused(lambda: payee.release_escrow(eid, 1_00), 403, "not_the_arbiter")
    refused(lambda: payer.refund_escrow(eid), 403, "not_an_escrow_party")
    unknown = "00000000-0000-4000-8000-000000000000"
    refused(lambda: payer.release_escrow(unknown, 1_00), 404, "unknown_escrow")
    refused(lambda: payer.escrow(unknown), 404, "unknown_escrow")
    refused(lambda: payer.escrow("not-a-uuid"), 422, "validation_error")
    mismatched = signed_release(payer, unknown, 1_00)
    response = post(network, "BKA1", f"/v1/escrows/{eid}/release", mismatched)
    assert_problem(response, 422, "validation_error")
    forged = sign_order(payee.key, escrow_refund_order(escrow=eid, by=payer.wallet_id))
    forged["order"]["by"] = payer.wallet_id
    assert_problem(post(network, "BKA1", f"/v1/escrows/{eid}/release", forged), 422)
    reused = signed_release(payer, eid, 10_00, nonce="same-nonce-1")
    assert post(network, "BKA1", f"/v1/escrows/{eid}/release", reused).status_code == 200
    changed = signed_release(payer, eid, 20_00, nonce="same-nonce-1")
    response = post(network, "BKA1", f"/v1/escrows/{eid}/release", changed)
    assert_problem(response, 409, "idempotency_key_reused")
    clock.advance(61)
    refused(lambda: payer.release_escrow(eid, 1_00), 409, "escrow_expired")
    refused(lambda: payee.refund_escrow(eid), 409, "escrow_expired")
    assert payee.balance().balance == 10_00
    assert payer.balance().locked == 290_00  # until the sweep gives it back
    network.run_jobs()
    info = payer.balance()
    assert (info.balance, info.locked) == (990_00, 0)
    assert payer.escrow(eid).status == "refunded"
    refused(lambda: payer.release_escrow(eid, 1_00), 409, "escrow_closed")
    audit_all(network)
