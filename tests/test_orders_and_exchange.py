"""Signed customer orders (payments, loads, unloads): replay and idempotency by nonce,
signature and freshness checks, currency; exchange between deposit, cash and wallet; the vault
float's issuance and redemption by staff."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from cbdc.clock import iso, utcnow
from cbdc.crypto import SigningKey
from tests.helpers import audits_ok, refused
from wallets.orders import load_order, payment_order, sign_order, unload_order


def balances(*wallets: Any) -> list[tuple[int, int]]:
    return [(i.balance, i.deposit_balance) for i in (w.balance() for w in wallets)]


def order_for(wallet: Any, payee: str, amount: int, **changes: Any) -> dict[str, Any]:
    order = payment_order(payer=wallet.wallet_id, payee=payee, amount=amount, currency="CNY")
    order.update(changes)
    return order


def post_raw(wallet: Any, path: str, signed: dict[str, Any]) -> Any:
    return wallet.client.request("POST", path, signed, signed=False)


# ------------------------------------------------------------------ payments


@pytest.mark.parametrize("cross", [False, True], ids=["same-operator", "cross-operator"])
def test_replayed_order_moves_money_once(network: Any, cross: bool) -> None:
    payer = network.open_wallet("BKA1", deposit=10_000, load=10_000)
    payee = network.open_wallet("BKB1" if cross else "BKA1")
    signed = sign_order(payer.key, order_for(payer, payee.wallet_id, 1_234, memo="lunch"))
    first = payer.submit(signed)
    assert first.replayed is False
    assert first.status == ("delivered" if cross else "completed")
    assert first.route == ("cross" if cross else "intra")
    second = payer.submit(signed)
    third = payer.submit(signed)
    assert second.replayed is True and third.replayed is True
    assert second.payment_id == third.payment_id == first.payment_id
    assert second.status == first.status and second.amount == 1_234
    assert payer.balance().balance == 10_000 - 1_234
    assert payee.balance().balance == 1_234

    # the receipt is signed by the payer's operator
    from cbdc.tokens import verify_document

    assert verify_document(network.operator_keys["BKA1"].public_key, first.receipt)
    assert first.receipt["document"]["payment_id"] == first.payment_id

    # same nonce, different order: refused, nothing moves
    for changes in ({"amount": 1_235}, {"memo": "dinner"}, {"created_at": iso(utcnow())}):
        other = sign_order(payer.key, {**signed["order"], **changes})
        refused(lambda other=other: payer.submit(other), 409, "idempotency_key_reused")
    assert payer.balance().balance == 10_000 - 1_234
    assert payee.balance().balance == 1_234

    # the payer (and staff) can look the payment up, another wallet cannot
    assert payer.payment(first.payment_id).status == first.status
    staff_view = network.staff("BKA1").request("GET", f"/v1/payments/{first.payment_id}")
    assert staff_view["payment_id"] == first.payment_id
    stranger = network.open_wallet("BKA1")
    refused(lambda: stranger.payment(first.payment_id), 404, "unknown_payment")
    refused(lambda: payer.payment(str(uuid.uuid4())), 404, "unknown_payment")
    audits_ok(network)


def test_order_signature_freshness_and_currency(network: Any) -> None:
    payer = network.open_wallet("BKA1", deposit=10_000, load=10_000)
    payee = network.open_wallet("BKA1")
    before = balances(payer, payee)

    # signed by a key that is not the wallet's
    refused(
        lambda: payer.submit(
            sign_order(SigningKey.generate(), order_for(payer, payee.wallet_id, 100))
        ),
        401,
        "bad_signature",
    )
    # signed, then the amount changed
    signed = sign_order(payer.key, order_for(payer, payee.wallet_id, 100))
    signed["order"]["amount"] = 9_000
    refused(lambda: payer.submit(signed), 401, "bad_signature")
    # signature that is not base64 at all (right length)
    garbage = {"order": order_for(payer, payee.wallet_id, 100), "signature": "*" * 86}
    refused(lambda: payer.submit(garbage), 401, "bad_signature")

    now = utcnow()
    for moment in (now - timedelta(minutes=11), now + timedelta(minutes=6)):
        order = order_for(payer, payee.wallet_id, 100, created_at=iso(moment))
        refused(
            lambda order=order: payer.submit(sign_order(payer.key, order)), 422, "order_expired"
        )
    for bad in ("yesterday", "2026-01-01T00:00:00"):  # not ISO / no time zone
        order = order_for(payer, payee.wallet_id, 100, created_at=bad)
        refused(
            lambda order=order: payer.submit(sign_order(payer.key, order)), 422, "validation_error"
        )
    order = order_for(payer, payee.wallet_id, 100, currency="USD")
    refused(lambda: payer.submit(sign_order(payer.key, order)), 422, "currency_mismatch")
    assert balances(payer, payee) == before

    # a few minutes old is still fine
    order = order_for(payer, payee.wallet_id, 100, created_at=iso(now - timedelta(minutes=8)))
    assert payer.submit(sign_order(payer.key, order)).status == "completed"

    # a payer held at another operator is not this operator's to debit
    elsewhere = network.open_wallet("BKB1", deposit=1_000, load=1_000)
    order = payment_order(
        payer=elsewhere.wallet_id, payee=payee.wallet_id, amount=100, currency="CNY"
    )
    refused(lambda: payer.submit(sign_order(elsewhere.key, order)), 422, "wrong_operator")
    assert elsewhere.balance().balance == 1_000
    audits_ok(network)


def test_history_shows_orders_and_hides_payer_from_payee(network: Any) -> None:
    payer = network.open_wallet("BKA1", deposit=10_000, load=6_000)
    payee = network.open_wallet("BKA1")
    payer.pay(payee.wallet_id, 1_500, memo="books")
    mine = payer.history().items
    assert [(i.kind, i.amount) for i in mine] == [("payment", -1_500), ("load", 6_000)]
    assert mine[0].counterparty == payee.wallet_id and mine[0].memo == "books"
    assert mine[1].counterparty == "deposit"
    theirs = payee.history().items
    assert [(i.kind, i.amount) for i in theirs] == [("payment", 1_500)]
    assert theirs[0].counterparty.startswith("anon-")
    assert payer.wallet_id not in theirs[0].counterparty
    # paging
    page = payer.history(limit=1)
    assert len(page.items) == 1 and page.next_before == page.items[0].id
    rest = payer.history(limit=1, before=page.next_before)
    assert rest.items[0].kind == "load"
    # a wallet cannot read another's history
    refused(
        lambda: payee.client.request("GET", f"/v1/wallets/{payer.wallet_id}/history"),
        403,
        "forbidden",
    )


# ------------------------------------------------------------------ exchange


def test_load_and_unload_move_money_between_deposit_and_wallet(network: Any) -> None:
    wallet = network.open_wallet("BKB1", deposit=10_000)
    assert balances(wallet) == [(0, 10_000)]
    loaded = wallet.load(6_000)
    assert (loaded.wallet_balance, loaded.deposit_balance, loaded.kind) == (6_000, 4_000, "load")
    unloaded = wallet.unload(2_500)
    assert (unloaded.wallet_balance, unloaded.deposit_balance) == (3_500, 6_500)
    assert balances(wallet) == [(3_500, 6_500)]

    # replays by nonce
    order = load_order(wallet=wallet.wallet_id, amount=1_000, currency="CNY")
    signed = sign_order(wallet.key, order)
    path = f"/v1/wallets/{wallet.wallet_id}/load"
    first, again = post_raw(wallet, path, signed), post_raw(wallet, path, signed)
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert again["order_id"] == first["order_id"]
    assert balances(wallet) == [(4_500, 5_500)]
    changed = sign_order(wallet.key, {**order, "amount": 1_001})
    refused(lambda: post_raw(wallet, path, changed), 409, "idempotency_key_reused")

    u_order = unload_order(wallet=wallet.wallet_id, amount=500, currency="CNY")
    u_signed = sign_order(wallet.key, u_order)
    u_path = f"/v1/wallets/{wallet.wallet_id}/unload"
    assert post_raw(wallet, u_path, u_signed)["replayed"] is False
    assert post_raw(wallet, u_path, u_signed)["replayed"] is True
    assert balances(wallet) == [(4_000, 6_000)]

    # signatures, freshness, currency, path
    refused(
        lambda: post_raw(
            wallet,
            path,
            sign_order(
                SigningKey.generate(), load_order(wallet=wallet.wallet_id, amount=1, currency="CNY")
            ),
        ),
        401,
        "bad_signature",
    )
    stale = {
        **load_order(wallet=wallet.wallet_id, amount=1, currency="CNY"),
        "created_at": iso(utcnow() - timedelta(hours=1)),
    }
    refused(lambda: post_raw(wallet, path, sign_order(wallet.key, stale)), 422, "order_expired")
    usd = load_order(wallet=wallet.wallet_id, amount=1, currency="USD")
    refused(lambda: post_raw(wallet, path, sign_order(wallet.key, usd)), 422, "currency_mismatch")
    other = network.open_wallet("BKB1", deposit=100)
    mismatch = sign_order(other.key, load_order(wallet=other.wallet_id, amount=1, currency="CNY"))
    refused(lambda: post_raw(wallet, path, mismatch), 422, "validation_error")
    assert balances(wallet, other) == [(4_000, 6_000), (0, 100)]

    # the first load at BKB1 obtained its vault float from the central bank
    central, reports = audits_ok(network)
    target = network.state("BKB1").ctx.water_marks.target
    assert central["operators"]["BKB1"]["live_token_value"] == target
    assert reports["BKB1"]["vault_float"] == target - 4_000
    assert reports["BKB1"]["wallets"] == 4_000
    assert reports["BKB1"]["deposits"] == 6_000 + 100


def test_cash_load_by_staff_is_idempotent(network: Any) -> None:
    wallet = network.open_wallet("BKA1")
    staff = network.staff("BKA1")
    path = f"/v1/admin/wallets/{wallet.wallet_id}/cash-load"
    key = f"cash-{uuid.uuid4()}"
    first = staff.request("POST", path, {"amount": 50_000}, idempotency_key=key)
    assert (first["wallet_balance"], first["replayed"]) == (50_000, False)
    again = staff.request("POST", path, {"amount": 50_000}, idempotency_key=key)
    assert (again["wallet_balance"], again["replayed"]) == (50_000, True)
    refused(
        lambda: staff.request("POST", path, {"amount": 50_001}, idempotency_key=key),
        409,
        "idempotency_key_reused",
    )
    refused(lambda: staff.request("POST", path, {"amount": 1}), 422, "validation_error")
    refused(
        lambda: staff.request("POST", path, {"amount": 1}, idempotency_key="short"),
        422,
        "validation_error",
    )
    # a wallet cannot load itself with cash
    refused(
        lambda: wallet.client.request(
            "POST", path, {"amount": 1}, idempotency_key=str(uuid.uuid4())
        ),
        403,
        "forbidden",
    )
    # nor can another operator's staff
    foreign = network.staff("BKB1")
    refused(
        lambda: foreign.request(
            "POST",
            path,
            {"amount": 1},
            idempotency_key=str(uuid.uuid4()),
            key=network.operator_keys["BKB1"],
            key_id="operator:BKA1",
        ),
        401,
        "bad_signature",
    )
    info = wallet.balance()
    assert (info.balance, info.deposit_balance) == (50_000, 0)
    # the cash went into the wallet and can be unloaded to the deposit
    wallet.unload(20_000)
    assert balances(wallet) == [(30_000, 20_000)]
    _, reports = audits_ok(network)
    assert reports["BKA1"]["wallets"] == 30_000


def test_deposit_credit_is_idempotent(network: Any) -> None:
    wallet = network.open_wallet("BKA1")
    customer = wallet.balance().customer_id
    staff = network.staff("BKA1")
    path = f"/v1/admin/customers/{customer}/deposit"
    key = f"dep-{uuid.uuid4()}"
    assert staff.request("POST", path, {"amount": 700}, idempotency_key=key)["replayed"] is False
    assert staff.request("POST", path, {"amount": 700}, idempotency_key=key)["replayed"] is True
    refused(
        lambda: staff.request("POST", path, {"amount": 701}, idempotency_key=key),
        409,
        "idempotency_key_reused",
    )
    refused(
        lambda: staff.request(
            "POST",
            "/v1/admin/customers/999999/deposit",
            {"amount": 1},
            idempotency_key=str(uuid.uuid4()),
        ),
        422,
        "validation_error",
    )
    assert wallet.balance().deposit_balance == 700


def test_staff_vault_issuance_and_redemption(network: Any) -> None:
    staff = network.staff("BKA1")
    key = f"vault-{uuid.uuid4()}"
    done = staff.request("POST", "/v1/admin/vault/issue", {"amount": 3_000_00}, idempotency_key=key)
    assert done["status"] == "done" and done["amount"] == 3_000_00
    again = staff.request(
        "POST", "/v1/admin/vault/issue", {"amount": 3_000_00}, idempotency_key=key
    )
    assert again["reference"] == done["reference"]
    refused(
        lambda: staff.request(
            "POST", "/v1/admin/vault/issue", {"amount": 3_000_01}, idempotency_key=key
        ),
        409,
        "idempotency_key_reused",
    )
    central, reports = audits_ok(network)
    assert central["issued"] == 3_000_00
    assert reports["BKA1"]["vault_float"] == 3_000_00

    redeemed = staff.request(
        "POST",
        "/v1/admin/vault/redeem",
        {"amount": 1_000_00},
        idempotency_key=f"vault-{uuid.uuid4()}",
    )
    assert redeemed["status"] == "done"
    central, reports = audits_ok(network)
    assert (central["issued"], central["redeemed"]) == (3_000_00, 1_000_00)
    assert reports["BKA1"]["vault_float"] == 2_000_00
    position = network.admin.request("GET", "/v1/admin/audit")["operators"]["BKA1"]
    assert position["reserves"] == 10**11 - 2_000_00

    # more than the float: only the float goes back
    staff.request(
        "POST",
        "/v1/admin/vault/redeem",
        {"amount": 9_000_00},
        idempotency_key=f"vault-{uuid.uuid4()}",
    )
    central, reports = audits_ok(network)
    assert central["live_token_value"] == 0 and reports["BKA1"]["vault_float"] == 0
