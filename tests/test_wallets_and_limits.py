"""Wallets and the limits of controllable anonymity (cbdc/policy.toml): who may open which class,
wallet ids, certificate chains, and every class limit, each refusal leaving balances unchanged.

Policy (yuan; x100 in fen): IV cap 10,000 single 2,000 daily 5,000 annual 50,000;
III cap 20,000 single 5,000 daily 10,000; II cap 500,000 single 50,000 daily 100,000; I none.
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from cbdc.addresses import is_valid_wallet_id, make_wallet_id
from cbdc.crypto import SigningKey
from cbdc.identity import (
    make_bank_account,
    make_resident_id,
    valid_bank_account,
    valid_resident_id,
)
from tests.helpers import audits_ok, refused
from wallets.certs import verify_wallet_chain

YUAN = 100
LIMITS: dict[str, dict[str, Any]] = {
    "IV": {
        "balance_cap": 10_000 * YUAN,
        "single_payment": 2_000 * YUAN,
        "daily": 5_000 * YUAN,
        "annual": 50_000 * YUAN,
    },
    "III": {
        "balance_cap": 20_000 * YUAN,
        "single_payment": 5_000 * YUAN,
        "daily": 10_000 * YUAN,
        "annual": None,
    },
    "II": {
        "balance_cap": 500_000 * YUAN,
        "single_payment": 50_000 * YUAN,
        "daily": 100_000 * YUAN,
        "annual": None,
    },
    "I": {"balance_cap": None, "single_payment": None, "daily": None, "annual": None},
}


def snapshot(*wallets: Any) -> list[tuple[int, int, int]]:
    out = []
    for w in wallets:
        info = w.balance()
        out.append((info.balance, info.deposit_balance, info.spent_today))
    return out


# ------------------------------------------------------------------ opening


ID_NUMBER = make_resident_id("11010119900307765")
BANK_ACCOUNT = make_bank_account("621700000000000")
BAD_ID_NUMBER = ID_NUMBER[:-1] + ("0" if ID_NUMBER[-1] != "0" else "1")
BAD_BANK_ACCOUNT = BANK_ACCOUNT[:-1] + str((int(BANK_ACCOUNT[-1]) + 1) % 10)


def wallet_count(network: Any, code: str = "BKA1") -> int:
    return int(network.staff(code).request("GET", "/v1/admin/audit")["wallet_count"])


def test_self_service_cannot_open_class_i(network: Any) -> None:
    """Class I is verified in person: only a request signed by staff opens one."""
    op = network.operator("BKA1")
    refused(
        lambda: op.open_wallet(
            display_name="Mallory",
            phone="+8613800000009",
            id_number=ID_NUMBER,
            bank_account=BANK_ACCOUNT,
            wallet_class="I",
        ),
        403,
        "class_requires_verification",
    )
    assert wallet_count(network) == 0


@pytest.mark.parametrize("wallet_class", ["III", "II"])
def test_self_service_verified_classes_need_valid_evidence(network: Any, wallet_class: str) -> None:
    """Classes III and II open remotely on the evidence the policy names; without it, or with
    evidence that fails its check, nothing is opened."""
    assert not valid_resident_id(BAD_ID_NUMBER) and not valid_bank_account(BAD_BANK_ACCOUNT)
    op = network.operator("BKA1")
    full = {
        "display_name": "Carol",
        "phone": "+8613800000003",
        "id_number": ID_NUMBER,
        "bank_account": BANK_ACCOUNT,
    }
    for dropped in ("id_number", "display_name", "phone") + (
        ("bank_account",) if wallet_class == "II" else ()
    ):
        evidence = {k: v for k, v in full.items() if k != dropped}
        refused(
            lambda evidence=evidence: op.open_wallet(wallet_class=wallet_class, **evidence),
            422,
            "evidence_missing",
        )
    refused(
        lambda: op.open_wallet(wallet_class=wallet_class, **{**full, "id_number": BAD_ID_NUMBER}),
        422,
        "evidence_invalid",
    )
    if wallet_class == "II":
        refused(
            lambda: op.open_wallet(
                wallet_class=wallet_class, **{**full, "bank_account": BAD_BANK_ACCOUNT}
            ),
            422,
            "evidence_invalid",
        )
    assert wallet_count(network) == 0
    opened = op.open_wallet(wallet_class=wallet_class, **full).balance()
    assert opened.wallet_class == wallet_class
    assert opened.limits.model_dump() == LIMITS[wallet_class]
    assert wallet_count(network) == 1


def test_self_service_class_iv_and_staff_any_class(network: Any) -> None:
    op = network.operator("BKA1")
    key = SigningKey.generate()
    wallet = op.open_wallet(display_name="Alice", phone="+8613800000001", key=key)
    info = wallet.balance()
    assert info.wallet_class == "IV" and info.status == "active"
    assert info.balance == 0 and info.deposit_balance == 0
    assert info.limits.model_dump() == LIMITS["IV"]
    # one wallet per key
    refused(
        lambda: op.open_wallet(display_name="Again", phone="+8613800000001", key=key),
        409,
        "conflict",
    )
    # self-service cannot attach a wallet to somebody else's customer record
    refused(
        lambda: op.open_wallet(display_name="x", customer_id=info.customer_id), 403, "forbidden"
    )
    # class IV is opened on a phone number
    refused(lambda: op.open_wallet(display_name="No phone"), 422, "evidence_missing")

    for wallet_class in ("I", "II", "III", "IV"):
        opened = network.open_wallet("BKA1", wallet_class=wallet_class)
        got = opened.balance()
        assert got.wallet_class == wallet_class
        assert got.limits.model_dump() == LIMITS[wallet_class]
        assert got.wallet_id.startswith("BKA1") and is_valid_wallet_id(got.wallet_id)

    # staff may open a second wallet for an existing customer (adding the evidence it needs)
    second = op.open_wallet(
        customer_id=info.customer_id,
        wallet_class="II",
        id_number=ID_NUMBER,
        bank_account=BANK_ACCOUNT,
        display_name="Alice",
        staff_key=network.operator_keys["BKA1"],
    )
    assert second.balance().customer_id == info.customer_id
    assert second.balance().wallet_class == "II"
    # the operator advertises the same limits
    assert {
        k: {f: v[f] for f in LIMITS[k]} for k, v in op.info()["wallet_classes"].items()
    } == LIMITS


def test_wallet_ids_route_and_catch_typos(network: Any) -> None:
    payer = network.open_wallet("BKA1", deposit=10_000, load=10_000)
    a2 = network.open_wallet("BKA1")
    b1 = network.open_wallet("BKB1")
    ids = [payer.wallet_id, a2.wallet_id, b1.wallet_id]
    assert len(set(ids)) == 3
    for wallet_id, code in zip(ids, ["BKA1", "BKA1", "BKB1"], strict=True):
        assert len(wallet_id) == 20 and wallet_id[:4] == code and is_valid_wallet_id(wallet_id)

    before = snapshot(payer, a2, b1)
    # one mistyped digit: caught by the check digits, nothing moves
    digit = a2.wallet_id[10]
    typo = a2.wallet_id[:10] + str((int(digit) + 1) % 10) + a2.wallet_id[11:]
    assert not is_valid_wallet_id(typo)
    refused(lambda: payer.pay(typo, 100), 422, "invalid_wallet_id")
    # two adjacent digits swapped
    swapped = b1.wallet_id[:16] + b1.wallet_id[17] + b1.wallet_id[16] + b1.wallet_id[18:]
    if swapped != b1.wallet_id:
        refused(lambda: payer.pay(swapped, 100), 422, "invalid_wallet_id")
    # well-formed id of an operator nobody registered
    stranger = make_wallet_id("ZZZ9", 12)
    assert is_valid_wallet_id(stranger)
    refused(lambda: payer.pay(stranger, 100), 422, "unknown_payee_operator")
    # well-formed id at this operator that does not exist
    refused(lambda: payer.pay(make_wallet_id("BKA1", 99_999), 100), 404, "unknown_wallet")
    refused(lambda: payer.pay(payer.wallet_id, 100), 422, "self_payment")
    assert snapshot(payer, a2, b1) == before
    audits_ok(network)


def test_certificate_chain_verifies_and_fails_when_tampered(network: Any) -> None:
    wallet = network.open_wallet("BKB1", wallet_class="III")
    op_info = network.operator("BKB1").info()
    operator_cert = op_info["certificate"]
    wallet_cert = wallet.balance().certificate
    cb_public = network.cb_key.public_key
    assert wallet_cert["document"]["wallet_id"] == wallet.wallet_id
    assert wallet_cert["document"]["public_key"] == wallet.key.public_key
    assert wallet_cert["document"]["wallet_class"] == "III"
    assert verify_wallet_chain(
        central_bank_public_key=cb_public,
        operator_certificate=operator_cert,
        wallet_certificate=wallet_cert,
    )

    def chain(op_cert: dict, w_cert: dict, key: str = cb_public) -> bool:
        return verify_wallet_chain(
            central_bank_public_key=key, operator_certificate=op_cert, wallet_certificate=w_cert
        )

    # another central bank's key
    assert not chain(operator_cert, wallet_cert, SigningKey.generate().public_key)
    # a class upgrade written into the wallet's certificate
    upgraded = copy.deepcopy(wallet_cert)
    upgraded["document"]["wallet_class"] = "I"
    assert not chain(operator_cert, upgraded)
    # the wallet certificate's key replaced
    rekeyed = copy.deepcopy(wallet_cert)
    rekeyed["document"]["public_key"] = SigningKey.generate().public_key
    assert not chain(operator_cert, rekeyed)
    # the operator certificate's key replaced by an impostor who re-signs the wallet's
    impostor = SigningKey.generate()
    fake_op = copy.deepcopy(operator_cert)
    fake_op["document"]["public_key"] = impostor.public_key
    resigned = {
        "document": wallet_cert["document"],
        "signature": impostor.sign_json(wallet_cert["document"]),
    }
    assert not chain(fake_op, resigned)
    # a wallet certified by another operator does not verify under this operator
    other = network.open_wallet("BKA1")
    assert not chain(operator_cert, other.balance().certificate)
    assert chain(network.operator("BKA1").info()["certificate"], other.balance().certificate)
    # a certificate whose wallet id names another operator, even if correctly signed
    forged_doc = {**wallet_cert["document"], "wallet_id": make_wallet_id("BKA1", 5)}
    forged = {
        "document": forged_doc,
        "signature": network.operator_keys["BKB1"].sign_json(forged_doc),
    }
    assert not chain(operator_cert, forged)


# ------------------------------------------------------------------ limits


@pytest.mark.parametrize("wallet_class", ["IV", "III", "II"])
def test_single_and_daily_limits(network: Any, wallet_class: str) -> None:
    limits = LIMITS[wallet_class]
    single, daily = limits["single_payment"], limits["daily"]
    payer = network.open_wallet(
        "BKA1", wallet_class=wallet_class, deposit=daily + 5_00, load=daily + 5_00
    )
    payee = network.open_wallet("BKA1", wallet_class="I")

    before = snapshot(payer, payee)
    body = refused(
        lambda: payer.pay(payee.wallet_id, single + 1), 422, "single_payment_limit_exceeded"
    )
    assert body["limit"] == single
    assert snapshot(payer, payee) == before

    spent = 0
    while spent + single <= daily:
        assert payer.pay(payee.wallet_id, single).status == "completed"
        spent += single
    remaining = daily - spent
    before = snapshot(payer, payee)
    refused(lambda: payer.pay(payee.wallet_id, remaining + 1), 422, "daily_limit_exceeded")
    assert snapshot(payer, payee) == before
    if remaining:
        payer.pay(payee.wallet_id, remaining)
    before = snapshot(payer, payee)
    body = refused(lambda: payer.pay(payee.wallet_id, 1), 422, "daily_limit_exceeded")
    assert body["limit"] == daily
    assert snapshot(payer, payee) == before
    info = payer.balance()
    assert info.spent_today == daily and info.balance == 5_00
    assert payee.balance().balance == daily
    # the daily limit binds outgoing payments only: the payer can still receive and unload
    payee.pay(payer.wallet_id, 1_00)
    payer.unload(1_00)
    audits_ok(network)


def test_class_i_is_unlimited(network: Any) -> None:
    amount = 2_000_000 * YUAN  # far above every other class's limits
    payer = network.open_wallet("BKA1", wallet_class="I", deposit=amount, load=amount)
    payee = network.open_wallet("BKA1", wallet_class="I")
    assert payer.pay(payee.wallet_id, amount).status == "completed"
    assert payee.balance().balance == amount
    audits_ok(network)


def test_annual_limit(network: Any) -> None:
    payer = network.open_wallet("BKA1", deposit=200_000_00, load=4_000_00)
    payee = network.open_wallet("BKA1", wallet_class="I")
    annual = LIMITS["IV"]["annual"]
    # this wallet has already spent all but 1,000.00 this year (as the operator counts years)
    year = datetime.now(ZoneInfo("Asia/Shanghai")).year
    with network.state("BKA1").factory() as session, session.begin():
        session.execute(
            text("UPDATE wallets SET spent_year = :y, spent_year_total = :t WHERE id = :w"),
            {"y": year, "t": annual - 1_000_00, "w": payer.wallet_id},
        )
    before = snapshot(payer, payee)
    body = refused(lambda: payer.pay(payee.wallet_id, 1_000_01), 422, "annual_limit_exceeded")
    assert body["limit"] == annual
    assert snapshot(payer, payee) == before
    payer.pay(payee.wallet_id, 1_000_00)
    refused(lambda: payer.pay(payee.wallet_id, 1), 422, "annual_limit_exceeded")
    info = payer.balance()
    assert info.spent_this_year == annual and info.balance == 3_000_00
    audits_ok(network)


def test_payee_balance_cap(network: Any) -> None:
    cap = LIMITS["IV"]["balance_cap"]
    payee = network.open_wallet("BKA1", deposit=cap, load=cap - 1_000_00)
    payer = network.open_wallet("BKA1", wallet_class="II", deposit=5_000_00, load=5_000_00)
    before = snapshot(payer, payee)
    body = refused(lambda: payer.pay(payee.wallet_id, 1_000_01), 422, "payee_balance_cap_exceeded")
    assert body["limit"] == cap
    assert snapshot(payer, payee) == before
    assert payer.pay(payee.wallet_id, 1_000_00).status == "completed"
    assert payee.balance().balance == cap
    refused(lambda: payer.pay(payee.wallet_id, 1), 422, "payee_balance_cap_exceeded")
    # a refused payment does not count against the payer's daily limit
    assert payer.balance().spent_today == 1_000_00
    assert snapshot(payer, payee)[0][0] == 4_000_00
    audits_ok(network)


def test_load_over_balance_cap(network: Any) -> None:
    cap = LIMITS["IV"]["balance_cap"]
    wallet = network.open_wallet("BKA1", deposit=cap + 500_00)
    before = snapshot(wallet)
    body = refused(lambda: wallet.load(cap + 1), 422, "balance_cap_exceeded")
    assert body["limit"] == cap
    assert snapshot(wallet) == before
    wallet.load(cap)
    refused(lambda: wallet.load(1), 422, "balance_cap_exceeded")
    refused(
        lambda: network.staff("BKA1").request(
            "POST",
            f"/v1/admin/wallets/{wallet.wallet_id}/cash-load",
            {"amount": 1},
            idempotency_key=str(uuid.uuid4()),
        ),
        422,
        "balance_cap_exceeded",
    )
    info = wallet.balance()
    assert (info.balance, info.deposit_balance) == (cap, 500_00)
    audits_ok(network)


def test_insufficient_funds(network: Any) -> None:
    wallet = network.open_wallet("BKA1", deposit=3_000, load=1_000)
    payee = network.open_wallet("BKA1")
    cross_payee = network.open_wallet("BKB1")
    info = wallet.balance()
    assert (info.balance, info.deposit_balance) == (1_000, 2_000)
    before = snapshot(wallet, payee, cross_payee)
    refused(lambda: wallet.pay(payee.wallet_id, 1_001), 422, "insufficient_funds")
    refused(lambda: wallet.pay(cross_payee.wallet_id, 1_001), 422, "insufficient_funds")
    refused(lambda: wallet.unload(1_001), 422, "insufficient_funds")
    refused(lambda: wallet.load(2_001), 422, "insufficient_funds")
    assert snapshot(wallet, payee, cross_payee) == before
    # exactly the balance is fine
    wallet.pay(payee.wallet_id, 1_000)
    assert wallet.balance().balance == 0
    refused(lambda: wallet.pay(payee.wallet_id, 1), 422, "insufficient_funds")
    audits_ok(network)
