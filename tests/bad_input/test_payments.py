"""Bad payment orders: malformed bodies, missing fields, wrong types, bad amounts, odd strings,
NUL characters, lone surrogates, bad wallet ids."""

from __future__ import annotations

import json
from typing import Any

from cbdc.addresses import make_wallet_id
from tests.bad_input.helpers import assert_problem, balances, valid_order
from wallets.orders import load_order, sign_order


def submit(p: dict[str, Any], order: Any, signature: str | None = None, **extra: Any) -> Any:
    if signature is None:
        signature = p["payer"].key.sign_json(order)
    return p["op"].send_json(
        "POST", "/v1/payments", {"order": order, "signature": signature, **extra}
    )


# ------------------------------------------------------------------ payments


def test_malformed_bodies(parties: dict[str, Any]) -> None:
    op = parties["op"]
    before = balances(parties)
    for raw in (
        b"{",
        b"not json",
        b"",
        b"[]",
        b"null",
        b'"order"',
        b"123",
        b'{"order": ',
        b"{}" * 1000,
        b'{"order": NaN}',
    ):
        assert_problem(op.send("POST", "/v1/payments", raw), 422)
    # not UTF-8 at all: a 400 parse error is as clear as a 422
    assert_problem(op.send("POST", "/v1/payments", b"\xff\xfe\x00"), 400, 422)
    assert_problem(
        op.send("POST", "/v1/payments", b"{}", headers={"content-type": "text/plain"}), 422
    )
    assert balances(parties) == before


def test_missing_fields_wrong_types_and_extra_fields(parties: dict[str, Any]) -> None:
    before = balances(parties)
    base = valid_order(parties)
    for field in base:
        order = {k: v for k, v in base.items() if k != field}
        assert_problem(submit(parties, order), 422)
    assert_problem(parties["op"].send_json("POST", "/v1/payments", {"order": base}), 422)
    assert_problem(parties["op"].send_json("POST", "/v1/payments", {"signature": "A" * 86}), 422)
    wrong_types: dict[str, list[Any]] = {
        "type": ["load", 1, None, ["payment"]],
        "payer": [123, None, {"id": 1}],
        "payee": [123, True, []],
        "amount": ["100", 1.5, 100.0, True, None, [], {}, "1e3"],
        "currency": [156, None, ["CNY"]],
        "nonce": [12345678, None, 1.5],
        "created_at": [1700000000, None, {}],
        "memo": [5, ["x"], {"a": 1}],
    }
    for field, values in wrong_types.items():
        for value in values:
            body = assert_problem(submit(parties, {**base, field: value}), 422)
            assert body["code"] == "validation_error"
    # extra fields, in the order (would escape the signature's meaning) and around it
    assert_problem(submit(parties, {**base, "fee": 1}), 422)
    assert_problem(submit(parties, base, extra_field="x"), 422)
    assert_problem(submit(parties, base, signature="A" * 79), 422)
    assert_problem(submit(parties, base, signature="A" * 101), 422)
    assert_problem(
        parties["op"].send_json("POST", "/v1/payments", {"order": base, "signature": None}), 422
    )
    assert balances(parties) == before


def test_bad_amounts(parties: dict[str, Any]) -> None:
    before = balances(parties)
    for amount in (0, -1, -(10**15), 10**15 + 1, 2**63, 10**30, -(2**64)):
        body = assert_problem(submit(parties, valid_order(parties, amount=amount)), 422)
        assert body["code"] == "validation_error" and "amount" in body["detail"]
    assert balances(parties) == before


def test_over_long_and_odd_strings(parties: dict[str, Any]) -> None:
    before = balances(parties)
    cases = {
        "memo": ["m" * 141, "é" * 141],
        "nonce": ["n" * 65, "short", ""],
        "payer": [parties["payer"].wallet_id + "0", parties["payer"].wallet_id[:-1]],
        "payee": ["x" * 10_000, "", parties["payee"].wallet_id.lower()],
        "currency": ["CNYY", "CN", ""],
        "created_at": ["x" * 10_000, "", "2026-13-45T99:99:99+00:00", "now"],
    }
    for field, values in cases.items():
        for value in values:
            assert_problem(submit(parties, valid_order(parties, **{field: value})), 422)
    assert balances(parties) == before


def test_nul_characters_are_refused_not_500(parties: dict[str, Any]) -> None:
    """PostgreSQL text cannot hold NUL (nor jsonb a \\u0000 escape): a correctly signed order
    carrying one must be refused as invalid input, not crash the service."""
    before = balances(parties)
    statuses = {}
    for field, value in (("memo", "nul \x00 byte"), ("nonce", "nonce\x00\x00\x00")):
        response = submit(parties, valid_order(parties, **{field: value}))
        statuses[field] = response.status_code
        if response.status_code < 500:
            assert_problem(response, 422)
    wallet = parties["payer"]
    order = {
        **load_order(wallet=wallet.wallet_id, amount=1, currency="CNY"),
        "nonce": "load\x00\x00\x00\x00",
    }
    response = parties["op"].send_json(
        "POST", f"/v1/wallets/{wallet.wallet_id}/load", sign_order(wallet.key, order)
    )
    statuses["load nonce"] = response.status_code
    assert all(400 <= status < 500 for status in statuses.values()), statuses
    assert balances(parties) == before


def test_lone_surrogates_are_refused_not_500(parties: dict[str, Any]) -> None:
    """JSON may carry a lone UTF-16 surrogate ("\\ud800") that no UTF-8 text can hold; such an
    order cannot have been signed by anyone and must get a 4xx."""
    before = balances(parties)
    statuses = {}
    for field in ("memo", "nonce", "payee", "created_at", "currency"):
        order = valid_order(parties)
        order[field] = (order[field][:-1] if field != "memo" else "") + "\ud800"
        body = json.dumps({"order": order, "signature": "A" * 86}).encode()  # ASCII-escaped
        assert b"\\ud800" in body
        response = parties["op"].send("POST", "/v1/payments", body)
        statuses[field] = response.status_code
        if response.status_code < 500:
            assert_problem(response, 401, 422)
    assert all(400 <= status < 500 for status in statuses.values()), statuses
    assert balances(parties) == before


def test_bad_wallet_ids_in_orders(parties: dict[str, Any]) -> None:
    before = balances(parties)
    payee = parties["payee"].wallet_id
    typo = payee[:-1] + str((int(payee[-1]) + 1) % 10)
    assert (
        assert_problem(submit(parties, valid_order(parties, payee=typo)), 422)["code"]
        == "invalid_wallet_id"
    )
    unknown_op = make_wallet_id("QQQ1", 7)
    assert (
        assert_problem(submit(parties, valid_order(parties, payee=unknown_op)), 422)["code"]
        == "unknown_payee_operator"
    )
    # the payer's id mistyped: nobody's key signs for it
    payer = parties["payer"].wallet_id
    payer_typo = payer[:-1] + str((int(payer[-1]) + 1) % 10)
    assert_problem(submit(parties, valid_order(parties, payer=payer_typo)), 422)
    assert_problem(submit(parties, valid_order(parties, payer=make_wallet_id("BKA1", 10**9))), 404)
    assert balances(parties) == before
