"""Vouchers in process: a programme, grants within the per-holder cap, spending at eligible
merchants here and at the other operator, every refusal, category changes; each scenario ends
with the audits (conservation: voucher accounts hold exactly what the programmes record)."""

from __future__ import annotations

from typing import Any

from tests.clocks import operator_clock
from tests.helpers import refused
from tests.programmable.voucher_helpers import (
    audit_vouchers,
    programme,
    set_category,
    signed_voucher_payment,
)
from wallets.orders import sign_order, voucher_grant_order


def test_create_grant_spend_here_and_at_the_other_operator(network: Any) -> None:
    clock = operator_clock(network)
    issuer = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    holder = network.open_wallet("BKA1")
    grocer = network.open_wallet("BKA1")
    far_grocer = network.open_wallet("BKB1")
    assert set_category(network, grocer, "groceries")["category"] == "groceries"
    set_category(network, far_grocer, "groceries")
    p = programme(clock, issuer, per_holder=100_00, categories=["groceries", "pharmacy"])
    assert (p.status, p.granted, p.outstanding) == ("active", 0, 0)

    granted = issuer.grant_voucher(p.programme_id, holder.wallet_id, 60_00)
    assert (granted.granted, granted.outstanding) == (60_00, 60_00)
    assert issuer.balance().balance == 940_00
    info = holder.balance()
    assert info.balance == 0
    assert [(v.programme, v.balance, v.categories) for v in info.vouchers] == [
        (p.programme_id, 60_00, ["groceries", "pharmacy"])
    ]

    paid = holder.pay_with_voucher(grocer.wallet_id, 25_00, programme=p.programme_id)
    assert (paid.status, paid.route, paid.voucher) == ("completed", "intra", 35_00)
    assert grocer.balance().balance == 25_00
    far = holder.pay_with_voucher(far_grocer.wallet_id, 15_00, programme=p.programme_id)
    assert far.route == "cross"
    reports = audit_vouchers(network)
    assert far_grocer.balance().balance == 15_00
    assert holder.payment(far.payment_id).status == "delivered"
    assert reports["BKA1"]["vouchers"] == 20_00

    shown = issuer.programme(p.programme_id)
    assert (shown.granted, shown.spent, shown.returned, shown.outstanding) == (
        60_00,
        40_00,
        0,
        20_00,
    )
    assert shown.holders_count == 1 and shown.holders[0].balance == 20_00
    assert holder.balance().vouchers[0].balance == 20_00
    assert holder.balance().spent_today == 40_00  # counted as the holder's payments
    kinds = [(i.kind, i.amount) for i in holder.history().items]
    assert ("voucher_unlock", 25_00) in kinds and ("payment", -25_00) in kinds
    assert ("voucher_grant", -60_00) in [(i.kind, i.amount) for i in issuer.history().items]


def test_grant_refusals_cap_and_idempotency(network: Any) -> None:
    clock = operator_clock(network)
    issuer = network.open_wallet("BKA1", deposit=500_00, load=500_00)
    holder = network.open_wallet("BKA1")
    elsewhere = network.open_wallet("BKB1")
    p = programme(clock, issuer, per_holder=50_00)
    order = voucher_grant_order(programme=p.programme_id, holder=holder.wallet_id, amount=30_00)
    signed = sign_order(issuer.key, order)
    path = f"/v1/programmes/{p.programme_id}/grants"
    first = network.operator_http["BKA1"].post(path, json=signed)
    again = network.operator_http["BKA1"].post(path, json=signed)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json()["replayed"] and again.json()["granted"] == 30_00
    refused(
        lambda: issuer.grant_voucher(p.programme_id, holder.wallet_id, 20_01),
        409,
        "voucher_cap_exceeded",
    )
    issuer.grant_voucher(p.programme_id, holder.wallet_id, 20_00)  # exactly the cap
    refused(
        lambda: issuer.grant_voucher(p.programme_id, elsewhere.wallet_id, 1_00),
        409,
        "holder_not_here",
    )
    refused(
        lambda: holder.grant_voucher(p.programme_id, issuer.wallet_id, 1_00), 401, "bad_signature"
    )
    refused(lambda: programme(clock, issuer, categories=["casino"]), 422, "bad_merchant_category")
    refused(lambda: programme(clock, issuer, seconds=-5), 422, "programme_bad_expiry")
    refused(lambda: programme(clock, issuer, seconds=400 * 86400), 422, "programme_bad_expiry")
    assert issuer.balance().balance == 450_00
    audit_vouchers(network)


def test_spend_refusals_leave_nothing_behind(network: Any) -> None:
    clock = operator_clock(network)
    issuer = network.open_wallet("BKA1", deposit=500_00, load=500_00)
    holder = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    grocer = network.open_wallet("BKA1")
    bar = network.open_wallet("BKA1")
    nobody = network.open_wallet("BKA1")
    far_bar = network.open_wallet("BKB1")
    set_category(network, grocer, "groceries")
    set_category(network, bar, "restaurants")
    set_category(network, far_bar, "restaurants")
    p = programme(clock, issuer, per_holder=50_00)
    issuer.grant_voucher(p.programme_id, holder.wallet_id, 50_00)

    pid = p.programme_id
    refused(
        lambda: holder.pay_with_voucher(bar.wallet_id, 1_00, programme=pid), 403, "not_eligible"
    )
    refused(
        lambda: holder.pay_with_voucher(far_bar.wallet_id, 1_00, programme=pid), 403, "not_eligible"
    )
    refused(
        lambda: holder.pay_with_voucher(nobody.wallet_id, 1_00, programme=pid), 403, "not_eligible"
    )
    refused(
        lambda: holder.pay_with_voucher(grocer.wallet_id, 50_01, programme=pid),
        409,
        "insufficient_voucher_balance",
    )
    refused(
        lambda: grocer.pay_with_voucher(grocer.wallet_id, 1_00, programme=pid), 422, "self_payment"
    )
    # A refused voucher payment keeps its nonce, as a payment's: the same order never succeeds.
    signed = signed_voucher_payment(holder, bar.wallet_id, 1_00, pid)
    assert (
        network.operator_http["BKA1"].post("/v1/vouchers/payments", json=signed).status_code == 403
    )
    set_category(network, bar, "groceries")
    second = network.operator_http["BKA1"].post("/v1/vouchers/payments", json=signed)
    assert (second.status_code, second.json()["code"]) == (409, "order_already_refused")
    assert (holder.balance().balance, holder.balance().vouchers[0].balance) == (100_00, 50_00)
    assert bar.balance().balance == 0
    # After the change, a new order to the (now groceries) bar is eligible.
    holder.pay_with_voucher(bar.wallet_id, 10_00, programme=pid)
    assert bar.balance().balance == 10_00
    set_category(network, bar, None)
    refused(
        lambda: holder.pay_with_voucher(bar.wallet_id, 1_00, programme=pid), 403, "not_eligible"
    )
    refused(lambda: set_category(network, bar, "casino"), 422, "bad_merchant_category")
    audit_vouchers(network)


def test_central_bank_registry(network: Any) -> None:
    merchant = network.open_wallet("BKA1")
    refused(
        lambda: network.admin.request("GET", f"/v1/registration/merchants/{merchant.wallet_id}"),
        404,
        "merchant_unknown",
    )
    set_category(network, merchant, "pharmacy")
    entry = network.admin.request("GET", f"/v1/registration/merchants/{merchant.wallet_id}")
    assert (entry["category"], entry["operator"]) == ("pharmacy", "BKA1")
    # Only the wallet's operator may register it.
    client = network.state("BKB1").ctx.central_bank.client
    refused(
        lambda: client.request(
            "PUT", f"/v1/registration/merchants/{merchant.wallet_id}", {"category": "general"}
        ),
        403,
        "not_wallet_operator",
    )
    assert network.open_wallet("BKB1").merchant_category(merchant.wallet_id) == "pharmacy"
    set_category(network, merchant, None)
    refused(
        lambda: network.admin.request("GET", f"/v1/registration/merchants/{merchant.wallet_id}"),
        404,
        "merchant_unknown",
    )
