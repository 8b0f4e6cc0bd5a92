"""Cash withdrawal at the counter (`POST /v1/admin/wallets/{id}/cash-withdraw`): staff submit
the holder's signed `cash_withdrawal` order; the wallet's digital currency returns to the vault
float and banknotes leave the counter. Conservation via the audits, refusals, one payout per
consent, staff only."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text

from cbdc.crypto import SigningKey
from cbdc.policy import load_policy, with_overrides
from tests.helpers import audits_ok, refused
from wallets.orders import cash_withdrawal_order, sign_order

QUIET_AML: dict[str, Any] = {
    "large_value": 10**12,
    "structuring_count": 10**6,
    "velocity_count": 10**6,
    "fan_count": 10**6,
    "load_unload_min": 10**12,
}


def path_of(wallet: Any) -> str:
    return f"/v1/admin/wallets/{wallet.wallet_id}/cash-withdraw"


def consent(wallet: Any, amount: int, key: SigningKey | None = None) -> dict[str, Any]:
    order = cash_withdrawal_order(wallet=wallet.wallet_id, amount=amount, currency="CNY")
    return sign_order(key or wallet.key, order)


def withdraw(network: Any, wallet: Any, signed: dict[str, Any], key: str | None = None) -> Any:
    return network.staff("BKA1").request(
        "POST", path_of(wallet), signed, idempotency_key=key or str(uuid.uuid4())
    )


def cash_in(network: Any, wallet: Any, amount: int) -> None:
    network.staff("BKA1").request(
        "POST",
        f"/v1/admin/wallets/{wallet.wallet_id}/cash-load",
        {"amount": amount},
        idempotency_key=str(uuid.uuid4()),
    )


def counter(network: Any) -> dict[str, int]:
    vault = network.staff("BKA1").request("GET", "/v1/admin/vault")
    return dict(vault["accounts"])


def test_cash_withdrawal_moves_wallet_money_to_the_float_and_cash_out(network: Any) -> None:
    wallet = network.open_wallet("BKA1")
    cash_in(network, wallet, 50_000)
    before = counter(network)

    done = withdraw(network, wallet, consent(wallet, 20_000))

    assert done["replayed"] is False
    assert (done["kind"], done["amount"], done["status"]) == (
        "cash_withdrawal",
        20_000,
        "completed",
    )
    assert done["wallet_balance"] == 30_000
    after = counter(network)
    assert after["vault_float"] - before["vault_float"] == 20_000
    assert before["cash_on_hand"] - after["cash_on_hand"] == 20_000
    assert after["cash_contra"] - before["cash_contra"] == 20_000
    item = wallet.history(limit=1).items[0]
    assert (item.kind, item.amount, item.counterparty) == ("cash_withdrawal", -20_000, "cash")
    _, reports = audits_ok(network)
    assert reports["BKA1"]["wallets"] == 30_000


def test_same_idempotency_key_returns_the_first_result_and_a_consent_pays_once(
    network: Any,
) -> None:
    wallet = network.open_wallet("BKA1")
    cash_in(network, wallet, 50_000)
    signed, key = consent(wallet, 10_000), f"cw-{uuid.uuid4()}"

    first = withdraw(network, wallet, signed, key)
    again = withdraw(network, wallet, signed, key)
    assert again["replayed"] is True and again["order_id"] == first["order_id"]
    assert again["wallet_balance"] == first["wallet_balance"] == 40_000
    # the same consent under another Idempotency-Key: the first outcome, no second payout
    other = withdraw(network, wallet, signed)
    assert other["replayed"] is True and other["order_id"] == first["order_id"]
    # the key bound to another request
    refused(
        lambda: withdraw(network, wallet, consent(wallet, 10_000), key),
        409,
        "idempotency_key_reused",
    )
    assert wallet.balance().balance == 40_000
    audits_ok(network)


def test_refusals_move_nothing(network: Any) -> None:
    wallet = network.open_wallet("BKA1")
    cash_in(network, wallet, 5_000)

    body = refused(
        lambda: withdraw(network, wallet, consent(wallet, 5_001)), 422, "insufficient_funds"
    )
    assert body["detail"] == "wallet balance 50.00 CNY does not cover 50.01 CNY"
    # signed by another key: not the holder's consent
    refused(
        lambda: withdraw(network, wallet, consent(wallet, 100, SigningKey.generate())),
        401,
        "bad_signature",
    )
    # the order names another wallet than the path
    stranger = network.open_wallet("BKA1")
    refused(
        lambda: network.staff("BKA1").request(
            "POST",
            path_of(stranger),
            consent(wallet, 100),
            idempotency_key=str(uuid.uuid4()),
        ),
        422,
        "validation_error",
    )
    # the wallet itself (or anyone not staff) cannot pay itself out in cash
    refused(
        lambda: wallet.client.request(
            "POST", path_of(wallet), consent(wallet, 100), idempotency_key=str(uuid.uuid4())
        ),
        403,
        "forbidden",
    )
    assert wallet.balance().balance == 5_000
    audits_ok(network)


def test_counter_pays_out_only_the_banknotes_it_holds(network: Any) -> None:
    """Loaded from its deposit, the wallet has money but the counter took in no banknotes."""
    wallet = network.open_wallet("BKA1", deposit=10_000, load=10_000)
    signed = consent(wallet, 1_000)
    body = refused(lambda: withdraw(network, wallet, signed), 409, "cash_on_hand_insufficient")
    assert "0.00 CNY" in body["detail"] and "10.00 CNY" in body["detail"]
    # the consent is not spent by the counter's shortage: once cash came in, it pays out
    other = network.open_wallet("BKA1")
    cash_in(network, other, 1_000)
    assert withdraw(network, wallet, signed)["wallet_balance"] == 9_000
    audits_ok(network)


@pytest.mark.parametrize(
    "network",
    [with_overrides(load_policy(None, 2), **{**QUIET_AML, "load_unload_min": 1_000_00})],
    indirect=True,
)
def test_cash_in_and_straight_out_is_rapid_load_unload(network: Any) -> None:
    wallet = network.open_wallet("BKA1")
    cash_in(network, wallet, 2_000_00)
    withdraw(network, wallet, consent(wallet, 1_600_00 - 1))  # just under 80 %
    alerts = network.staff("BKA1").request("GET", "/v1/admin/aml/alerts")["alerts"]
    assert alerts == []
    withdraw(network, wallet, consent(wallet, 1))
    alerts = network.staff("BKA1").request("GET", "/v1/admin/aml/alerts")["alerts"]
    assert [(a["rule"], a["wallet_id"]) for a in alerts] == [
        ("rapid_load_unload", wallet.wallet_id)
    ]


def test_a_refused_consent_is_kept_as_a_cash_withdrawal_and_refused_again(network: Any) -> None:
    """The refused order keeps its nonce (the same consent never pays out later) and says
    where the money would have gone: cash, not the deposit."""
    wallet = network.open_wallet("BKA1")
    signed = consent(wallet, 1_000)
    refused(lambda: withdraw(network, wallet, signed), 422, "insufficient_funds")
    cash_in(network, wallet, 5_000)
    refused(lambda: withdraw(network, wallet, signed), 409, "order_already_refused")
    with network.state("BKA1").factory() as s:
        row = s.execute(
            text("SELECT kind, status, counterparty FROM orders WHERE wallet_id = :w"),
            {"w": wallet.wallet_id},
        ).one()
    assert tuple(row) == ("cash_withdrawal", "failed", "cash")
    assert wallet.balance().balance == 5_000


def test_one_consent_sent_twice_at_once_pays_out_once(network: Any) -> None:
    wallet = network.open_wallet("BKA1")
    cash_in(network, wallet, 10_000)
    signed = consent(wallet, 6_000)
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: withdraw(network, wallet, signed), range(2)))
    assert sorted(a["replayed"] for a in answers) == [False, True]
    assert wallet.balance().balance == 4_000
    audits_ok(network)
