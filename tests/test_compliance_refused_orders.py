"""A signed order that was refused keeps its refusal for good (operators/wallets/service.py,
record_refused_order): resending the same signed order after the payer got funds, or after an
upgrade raised its limits, is refused again (409 order_already_refused) and moves nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import VALID_ID_NUMBER
from tests.helpers import refused
from wallets.orders import payment_order, sign_order, unload_order

YUAN = 100


def signed_payment(payer: Any, payee: Any, amount: int) -> dict[str, Any]:
    return sign_order(
        payer.key,
        payment_order(payer=payer.wallet_id, payee=payee.wallet_id, amount=amount, currency="CNY"),
    )


def state_of(*wallets: Any) -> list[tuple[int, int, int, int]]:
    out = []
    for w in wallets:
        info = w.balance()
        out.append((info.balance, info.deposit_balance, info.spent_today, len(w.history().items)))
    return out


def test_a_refused_payment_cannot_succeed_later(network: Any) -> None:
    payer = network.open_wallet("BKA1", load=100 * YUAN)
    local = network.open_wallet("BKA1")
    remote = network.open_wallet("BKB1")
    to_local = signed_payment(payer, local, 500 * YUAN)
    to_remote = signed_payment(payer, remote, 500 * YUAN)
    refused(lambda: payer.submit(to_local), 422, "insufficient_funds")
    refused(lambda: payer.submit(to_remote), 422, "insufficient_funds")

    # The payer gets funds; the same signed orders are still refused, and nothing moves.
    customer_id = payer.balance().customer_id
    network.staff("BKA1").request(
        "POST",
        f"/v1/admin/customers/{customer_id}/deposit",
        {"amount": 1_000 * YUAN},
        idempotency_key=str(uuid.uuid4()),
    )
    payer.load(1_000 * YUAN)
    before = state_of(payer, local, remote)
    assert before[0][0] == 1_100 * YUAN
    for order in (to_local, to_remote, to_local):
        body = refused(lambda order=order: payer.submit(order), 409, "order_already_refused")
        assert "insufficient_funds" in str(body)
    network.run_jobs()
    assert state_of(payer, local, remote) == before

    # A freshly signed order for the same payment goes through.
    fresh = signed_payment(payer, local, 500 * YUAN)
    receipt = payer.submit(fresh)
    assert receipt.status == "completed" and not receipt.replayed
    # ...and resending that one is an idempotent replay, not a second payment.
    again = payer.submit(fresh)
    assert again.replayed and again.payment_id == receipt.payment_id
    assert local.balance().balance == 500 * YUAN
    assert payer.balance().balance == 600 * YUAN


def test_a_payment_refused_for_a_limit_stays_refused_after_an_upgrade(network: Any) -> None:
    payer = network.open_wallet("BKA1", load=3_000 * YUAN)
    payee = network.open_wallet("BKA1")
    order = signed_payment(payer, payee, 2_500 * YUAN)  # over class IV's single limit
    refused(lambda: payer.submit(order), 422, "single_payment_limit_exceeded")
    payer.change_class("III", display_name="Ma Jun", id_number=VALID_ID_NUMBER)
    before = state_of(payer, payee)
    refused(lambda: payer.submit(order), 409, "order_already_refused")
    assert state_of(payer, payee) == before
    assert payer.submit(signed_payment(payer, payee, 2_500 * YUAN)).status == "completed"


def test_a_refused_unload_cannot_succeed_later(network: Any) -> None:
    wallet = network.open_wallet("BKA1", load=100 * YUAN)
    order = sign_order(
        wallet.key, unload_order(wallet=wallet.wallet_id, amount=500 * YUAN, currency="CNY")
    )
    path = f"/v1/wallets/{wallet.wallet_id}/unload"
    refused(
        lambda: wallet.client.request("POST", path, order, signed=False), 422, "insufficient_funds"
    )
    customer_id = wallet.balance().customer_id
    network.staff("BKA1").request(
        "POST",
        f"/v1/admin/customers/{customer_id}/deposit",
        {"amount": 1_000 * YUAN},
        idempotency_key=str(uuid.uuid4()),
    )
    wallet.load(1_000 * YUAN)
    before = state_of(wallet)
    refused(
        lambda: wallet.client.request("POST", path, order, signed=False),
        409,
        "order_already_refused",
    )
    assert state_of(wallet) == before
