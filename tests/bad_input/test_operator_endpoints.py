"""Bad input on the operator's other endpoints: paths, queries, staff bodies, opening wallets,
interoperator calls."""

from __future__ import annotations

import json
import uuid
from typing import Any

from cbdc.crypto import SigningKey
from tests.bad_input.helpers import assert_problem

# ------------------------------------------------------------------ other operator endpoints


def test_operator_paths_queries_and_staff_bodies(parties: dict[str, Any]) -> None:
    net, op = parties["network"], parties["op"]
    staff_key, staff_id = net.operator_keys["BKA1"], "operator:BKA1"
    wallet = parties["payer"]
    customer = wallet.balance().customer_id

    def staff(method: str, path: str, body: bytes | None = None, **headers: str) -> Any:
        return op.send(method, path, body, key=staff_key, key_id=staff_id, headers=headers)

    for path in ("/v1/payments/not-a-uuid", "/v1/payments/%00", f"/v1/payments/{'9' * 500}"):
        assert_problem(staff("GET", path), 422, 404)
    for path in (
        "/v1/wallets/garbage",
        "/v1/wallets/%00%00",
        f"/v1/wallets/{'B' * 20}",
        f"/v1/wallets/{wallet.wallet_id}x",
        "/v1/wallets/" + "9" * 5000,
    ):
        assert_problem(staff("GET", path), 422, 404)
    history = f"/v1/wallets/{wallet.wallet_id}/history"
    for query in (
        "limit=0",
        "limit=501",
        "limit=abc",
        "before=0",
        "before=-5",
        "before=x",
        "limit=1e3",
    ):
        assert_problem(staff("GET", f"{history}?{query}"), 422)
    idem = {"Idempotency-Key": str(uuid.uuid4())}
    for path in (
        "/v1/admin/customers/abc/deposit",
        "/v1/admin/customers/-1/deposit",
        "/v1/admin/customers/1.5/deposit",
        "/v1/admin/customers/0/deposit",
    ):
        assert_problem(staff("POST", path, b'{"amount": 1}', **idem), 422, 404)
    deposit = f"/v1/admin/customers/{customer}/deposit"
    for raw in (
        b"{",
        b'{"amount": 0}',
        b'{"amount": -3}',
        b'{"amount": "3"}',
        b'{"amount": 3, "x": 1}',
        b'{"amount": 1e30}',
        b"[]",
        json.dumps({"amount": 10**16}).encode(),
    ):
        assert_problem(staff("POST", deposit, raw, **{"Idempotency-Key": str(uuid.uuid4())}), 422)
    assert_problem(staff("POST", deposit, b'{"amount": 1}'), 422)  # no Idempotency-Key
    assert_problem(staff("POST", deposit, b'{"amount": 1}', **{"Idempotency-Key": "k" * 101}), 422)
    cash = f"/v1/admin/wallets/{'Z' * 20}/cash-load"
    assert_problem(staff("POST", cash, b'{"amount": 1}', **idem), 422, 404)
    load = f"/v1/wallets/{wallet.wallet_id}/load"
    for raw in (b"{", b'{"order": {}, "signature": ""}', b"null"):
        assert_problem(op.send("POST", load, raw), 422)
    # unknown routes and methods are problems too
    assert_problem(op.send("GET", "/v1/nothing-here"), 404)
    assert_problem(op.send("DELETE", "/v1/payments"), 405)
    assert wallet.balance().deposit_balance == 0


def test_operator_numbers_beyond_bigint_are_refused(parties: dict[str, Any]) -> None:
    """Integers in paths and queries are unbounded in Python but BIGINT in the database: one
    that does not fit must be a 4xx (no such customer / invalid), not a 500."""
    net, op = parties["network"], parties["op"]
    staff_key, staff_id = net.operator_keys["BKA1"], "operator:BKA1"
    wallet = parties["payer"]
    statuses = {}
    for path in (f"/v1/admin/customers/{2**63}/deposit", f"/v1/admin/customers/{2**70}/deposit"):
        response = op.send(
            "POST",
            path,
            b'{"amount": 1}',
            key=staff_key,
            key_id=staff_id,
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        statuses[path] = response.status_code
    history = f"/v1/wallets/{wallet.wallet_id}/history"
    for query in (f"before={2**63}", f"before={2**70}"):
        response = op.send("GET", f"{history}?{query}", key=staff_key, key_id=staff_id)
        statuses[query] = response.status_code
    assert all(400 <= status < 500 for status in statuses.values()), statuses
    assert wallet.balance().deposit_balance == 0


def test_new_wallet_key_id_with_a_non_object_body(parties: dict[str, Any]) -> None:
    """The `new-wallet` key id makes the server read the public key from the body before the
    body is validated: a JSON array, number or string there must be a 4xx, not a crash."""
    op = parties["op"]
    key = SigningKey.generate()
    statuses = {}
    for raw in (b"[]", b"[1, 2]", b"5", b'"x"', b"true", b"null"):
        statuses[raw] = op.send(
            "POST", "/v1/wallets", raw, key=key, key_id="new-wallet"
        ).status_code
    assert all(400 <= status < 500 for status in statuses.values()), statuses


def test_open_wallet_bad_bodies(parties: dict[str, Any]) -> None:
    net, op = parties["network"], parties["op"]
    staff_key = net.operator_keys["BKA1"]
    key = SigningKey.generate()
    count = net.staff("BKA1").request("GET", "/v1/admin/audit")["wallet_count"]
    bodies: list[Any] = [
        {},
        {"public_key": key.public_key},
        {"public_key": key.public_key, "customer": {}},
        {"public_key": "short", "customer": {"display_name": "A", "phone": "+8613800000000"}},
        {
            "public_key": key.public_key,
            "wallet_class": "V",
            "customer": {"display_name": "A", "phone": "+8613800000000"},
        },
        {"public_key": key.public_key, "customer": {"display_name": "A", "phone": "call me"}},
        {"public_key": key.public_key, "customer": {"display_name": "", "phone": "+86138000"}},
        {
            "public_key": key.public_key,
            "customer": {"display_name": "A" * 201, "phone": "+8613800000000"},
        },
        {
            "public_key": key.public_key,
            "extra": 1,
            "customer": {"display_name": "A", "phone": "+8613800000000"},
        },
    ]
    for value in bodies:
        raw = json.dumps(value).encode()
        # signed as the new wallet (the key id resolver reads the body) and as staff
        assert_problem(op.send("POST", "/v1/wallets", raw, key=key, key_id="new-wallet"))
        assert_problem(op.send("POST", "/v1/wallets", raw, key=staff_key, key_id="operator:BKA1"))
    assert_problem(op.send("POST", "/v1/wallets", b"\xff\xfe", key=key, key_id="new-wallet"))
    assert net.staff("BKA1").request("GET", "/v1/admin/audit")["wallet_count"] == count


def test_interop_garbage_is_refused(parties: dict[str, Any]) -> None:
    net, op = parties["network"], parties["op"]
    peer_key, peer_id = net.operator_keys["BKB1"], "operator:BKB1"
    bodies: list[Any] = [
        {},
        [],
        {
            "receipt": {},
            "payee_tokens": [],
            "kind": "payment",
            "reference": "r",
            "payee_wallet": "x",
        },
        {
            "receipt": {},
            "payee_tokens": [{}],
            "kind": "payment",
            "reference": "r",
            "payee_wallet": "x",
        },
        {
            "receipt": {"document": "x", "signature": 5},
            "payee_tokens": [{"a": 1}],
            "kind": "return",
            "reference": "r",
            "payee_wallet": "x",
        },
        {
            "receipt": {"document": {}, "signature": "A" * 86},
            "payee_tokens": [1],
            "kind": "payment",
            "reference": "r",
            "payee_wallet": "x",
        },
        {
            "receipt": {},
            "payee_tokens": [{}],
            "kind": "gift",
            "reference": "r",
            "payee_wallet": "x",
        },
    ]
    for value in bodies:
        response = op.send_json(
            "POST", "/v1/interop/settlements", value, key=peer_key, key_id=peer_id
        )
        assert_problem(response, 409, 422)
    assert parties["payee"].balance().balance == 0
