"""Adversarial: who may read and act, idempotency keys, odd inputs, many tokens."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from cbdc.clock import utcnow
from cbdc.db import transaction
from cbdc.http import RemoteError, SignedClient
from operators.vault import repository as vault_repo
from tests.adversarial.helpers import job


def test_a_payment_settles_when_the_vault_value_is_spread_over_many_tokens(
    network: Any,
) -> None:
    """BUG (payment stuck forever): operators/vault.py `reserve_for` takes at most 200 tokens
    (`held_tokens_for_update(limit=200)`) and raises TokensUnavailable otherwise; the job is
    retried every 0.05 s for ever and never fails. A vault whose value is in many small tokens
    (an operator that mostly receives: every inbound payment is one exact token) cannot settle
    a payment larger than its 200 biggest tokens although it holds enough value; the payer's
    money stays in `in_transit_out`. Here BKA1 holds 300.00 as 298 tokens (297 of 1.00 and
    one of 3.00) and a customer pays 250.00 to BKB1. Correct: the payment is delivered (use
    more inputs, or consolidate with /v1/tokens/split)."""
    a = network.state("BKA1")
    staff = network.staff("BKA1")
    assert (
        staff.request(
            "POST", "/v1/admin/vault/issue", {"amount": 300_00}, idempotency_key=f"k-{uuid.uuid4()}"
        )["status"]
        == "done"
    )
    cb = a.ctx.central_bank.client
    with a.factory() as s:
        serial = str(
            s.execute(text("SELECT serial FROM vault_tokens WHERE status = 'held'")).scalar_one()
        )
    remaining = 300_00
    for _ in range(3):  # split into 100-fen tokens at the central bank, keep the vault in step
        outputs = [100] * 99 + [remaining - 99 * 100]
        split = cb.request(
            "POST",
            "/v1/tokens/split",
            {"serials": [serial], "outputs": outputs},
            idempotency_key=f"split-{uuid.uuid4()}",
        )

        def store(s: Any, old: str = serial, tokens: list = split["tokens"]) -> None:
            vault_repo.tokens_gone(s, [old], utcnow())
            vault_repo.add_vault_tokens(s, tokens, via="test-split")

        transaction(a.factory, store)
        remaining -= 99 * 100
        serial = next(t["serial"] for t in split["tokens"] if t["amount"] == remaining)
    payer = network.open_wallet("BKA1", deposit=250_00, load=250_00)
    payee = network.open_wallet("BKB1")
    receipt = payer.pay(payee.wallet_id, 250_00)
    for _ in range(3):
        a.runner.run_reference(f"pay:{receipt.payment_id}", patience=0.2)
    assert payer.payment(receipt.payment_id).status == "delivered", job(
        network, "BKA1", f"pay:{receipt.payment_id}", "settle"
    )


def test_staff_vault_issuance_with_a_long_idempotency_key(network: Any) -> None:
    """BUG (accepted request that can never succeed): the operator accepts an Idempotency-Key
    of up to 100 characters on POST /v1/admin/vault/issue (and /redeem) but forwards
    `issue:<key>` (up to 106 characters) as the central bank's Idempotency-Key, which allows at
    most 100: the job fails with `422 validation_error` from the central bank. Correct: either
    refuse the key up front (4xx) or issue."""
    staff = network.staff("BKA1")
    key = "k" * 100
    try:
        answer = staff.request(
            "POST", "/v1/admin/vault/issue", {"amount": 1_000_00}, idempotency_key=key
        )
    except RemoteError as exc:
        assert exc.status == 422
        return
    assert answer["status"] == "done", answer


# ================================================================== properties that hold


def test_who_may_read_and_act(network: Any) -> None:
    """Verified: a wallet key cannot read another wallet's payment (404, not revealed), balance
    or history (403), nor change its class; another operator's key gets 403 on staff
    endpoints; a wallet key cannot deliver settlements; the regulator cannot read wallets;
    an operator cannot read another operator's token at the central bank."""
    alice = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    bob = network.open_wallet("BKA1")
    paid = alice.pay(bob.wallet_id, 10_00)

    def refused(call: Any, status: int) -> None:
        with pytest.raises(RemoteError) as caught:
            call()
        assert caught.value.status == status, caught.value.body

    refused(lambda: bob.payment(paid.payment_id), 404)  # even the payee sees no payer order
    refused(lambda: bob.client.request("GET", f"/v1/wallets/{alice.wallet_id}"), 403)
    refused(lambda: bob.client.request("GET", f"/v1/wallets/{alice.wallet_id}/history"), 403)
    refused(
        lambda: bob.client.request(
            "POST", f"/v1/wallets/{alice.wallet_id}/class", {"wallet_class": "IV"}
        ),
        403,
    )
    foreign = SignedClient(
        network.operator_http["BKA1"], key=network.operator_keys["BKB1"], key_id="operator:BKB1"
    )
    refused(lambda: foreign.request("GET", "/v1/admin/audit"), 403)
    refused(lambda: foreign.request("GET", f"/v1/wallets/{alice.wallet_id}"), 403)
    refused(lambda: foreign.request("GET", f"/v1/payments/{paid.payment_id}"), 403)
    refused(
        lambda: foreign.request(
            "POST",
            f"/v1/admin/wallets/{alice.wallet_id}/cash-load",
            {"amount": 1},
            idempotency_key=str(uuid.uuid4()),
        ),
        403,
    )
    refused(
        lambda: alice.client.request(
            "POST",
            "/v1/interop/settlements",
            {
                "receipt": {},
                "payee_tokens": [{}],
                "kind": "payment",
                "reference": "x",
                "payee_wallet": alice.wallet_id,
            },
        ),
        403,
    )
    regulator = SignedClient(
        network.operator_http["BKA1"], key=network.regulator.signing, key_id="regulator"
    )
    refused(lambda: regulator.request("GET", f"/v1/wallets/{alice.wallet_id}"), 403)
    refused(lambda: regulator.request("GET", f"/v1/payments/{paid.payment_id}"), 403)
    with network.state("BKA1").factory() as s:
        serial = str(s.execute(text("SELECT serial FROM vault_tokens LIMIT 1")).scalar_one())
    as_b = SignedClient(
        network.cb,
        key=network.operator_keys["BKB1"],
        key_id="operator:BKB1",
        server_public_key=network.cb_key.public_key,
    )
    refused(lambda: as_b.request("GET", f"/v1/tokens/{serial}"), 403)
    assert alice.balance().balance == 990_00


def test_idempotency_keys_are_bound_to_one_request_across_endpoints(network: Any) -> None:
    """Verified: at the operator, a staff Idempotency-Key used for a deposit credit is refused
    for a cash load (409); a cash load resent with a new envelope nonce and the same key is
    replayed, not repeated; at the central bank a key used for issuance is refused for a
    redemption and for a settlement (the request hash covers the path)."""
    wallet = network.open_wallet("BKA1")
    staff = network.staff("BKA1")
    key = f"k-{uuid.uuid4()}"
    staff.request(
        "POST",
        f"/v1/admin/customers/{wallet.balance().customer_id}/deposit",
        {"amount": 100},
        idempotency_key=key,
    )
    with pytest.raises(RemoteError) as caught:
        staff.request(
            "POST",
            f"/v1/admin/wallets/{wallet.wallet_id}/cash-load",
            {"amount": 100},
            idempotency_key=key,
        )
    assert caught.value.code == "idempotency_key_reused"
    cash_key = f"c-{uuid.uuid4()}"
    for replayed in (False, True, True):
        answer = staff.request(
            "POST",
            f"/v1/admin/wallets/{wallet.wallet_id}/cash-load",
            {"amount": 300},
            idempotency_key=cash_key,
        )
        assert answer["replayed"] is replayed
    assert wallet.balance().balance == 300

    cb = network.state("BKB1").ctx.central_bank.client
    cb_key = f"cb-{uuid.uuid4()}"
    token = cb.request("POST", "/v1/issuance", {"amount": 500}, idempotency_key=cb_key)["tokens"][0]
    for path, body in (
        ("/v1/redemption", {"serials": [token["serial"]], "amount": 500}),
        (
            "/v1/settlements",
            {
                "payee_operator": "BKA1",
                "amount": 500,
                "serials": [token["serial"]],
                "reference": "r",
            },
        ),
    ):
        with pytest.raises(RemoteError) as caught:
            cb.request("POST", path, body, idempotency_key=cb_key)
        assert caught.value.code == "idempotency_key_reused"
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["ok"] and central["operators"]["BKB1"]["live_token_value"] == 500


def test_odd_inputs_get_4xx_not_500(network: Any) -> None:
    """Verified: huge `before` cursors, NUL bytes in filters, a non-UUID payment id, a payment
    id of another wallet, and a NUL in an order memo all give 4xx."""
    wallet = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    other = network.open_wallet("BKA1")
    staff = network.staff("BKA1")
    cases = [
        lambda: wallet.client.request(
            "GET", f"/v1/wallets/{wallet.wallet_id}/history", params={"before": 2**63}
        ),
        lambda: staff.request("GET", "/v1/admin/aml/alerts", params={"rule": "a\x00b"}),
        lambda: staff.request("GET", "/v1/admin/aml/alerts", params={"wallet": "\x00" * 20}),
        lambda: wallet.client.request("GET", "/v1/payments/not-a-uuid"),
        lambda: wallet.pay(other.wallet_id, 1, memo="nul\x00memo"),
        lambda: network.admin.request(
            "GET", "/v1/analysis/alerts", params={"since": "0001-01-01T00:00:00+14:00"}
        ),
        lambda: network.admin.request("GET", "/v1/analysis/alerts", params={"operator": "\x00"}),
    ]
    for i, case in enumerate(cases):
        try:
            case()
        except RemoteError as exc:
            assert 400 <= exc.status < 500, (i, exc.body)
    assert wallet.balance().balance == 100_00


def test_wallet_ids_do_not_reveal_how_many_wallets_were_opened(network: Any) -> None:
    """Finding 7: wallet ids were the operator's sequential account ids, so two ids told how
    many wallets were opened between them and named their neighbours. Now the number is a keyed
    permutation of the account id: consecutive openings are far apart, each operator numbers
    differently, and the numbering stays a permutation (no collisions) over 100,000 accounts."""
    from cbdc.addresses import WalletNumbering, is_valid_wallet_id, wallet_numbering

    first, second = network.open_wallet("BKA1"), network.open_wallet("BKA1")
    numbers = [int(w.wallet_id[4:18]) for w in (first, second)]
    assert abs(numbers[1] - numbers[0]) > 1000, numbers
    with network.state("BKA1").factory() as s:
        accounts = [
            s.execute(
                text("SELECT account_id FROM wallets WHERE id = :w"), {"w": w.wallet_id}
            ).scalar_one()
            for w in (first, second)
        ]
    assert accounts[1] - accounts[0] < 1000 and numbers != accounts  # sequential inside only
    assert all(is_valid_wallet_id(w.wallet_id) for w in (first, second))

    numbering = wallet_numbering(network.operator_keys["BKA1"].private_bytes())
    assert numbering.wallet_id("BKA1", accounts[0]) == first.wallet_id  # deterministic
    other = wallet_numbering(network.operator_keys["BKB1"].private_bytes())
    assert other.number(accounts[0]) != numbering.number(accounts[0])

    many = {numbering.number(a) for a in range(100_000)}
    assert len(many) == 100_000 and all(0 <= n < 10**14 for n in many)
    ordered = sorted(many)
    gaps = {b - a for a, b in zip(ordered, ordered[1:], strict=False)}
    assert len(gaps) > 90_000  # spread, not a block of consecutive numbers
    with pytest.raises(ValueError):
        numbering.number(10**14)
    with pytest.raises(ValueError):
        WalletNumbering(b"short")
