"""Bad input never gets a 500: malformed JSON, missing fields, wrong types, bad amounts, extra
fields, over-long strings, NUL characters, non-UUID and out-of-range path and query parameters
all get a 4xx RFC 9457 problem (application/problem+json with type/title/status/detail/code).

The services are called through clients that turn an unhandled exception into the 500 a real
server would send (instead of re-raising it into the test).
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbdc.addresses import make_wallet_id
from cbdc.clock import iso, utcnow
from cbdc.crypto import SigningKey
from cbdc.envelope import CENTRAL_BANK_AUDIENCE, operator_audience, sign_request
from wallets.orders import load_order, payment_order, sign_order

JSON = {"content-type": "application/json"}


def assert_problem(response: Any, *statuses: int) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if statuses:
        assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body), body
    assert body["status"] == response.status_code
    assert isinstance(body["code"], str) and body["code"]
    assert body["type"].endswith(body["code"])
    return body


class Raw:
    """Raw HTTP against one app that reports server errors as 500 responses."""

    def __init__(self, app: Any, audience: str) -> None:
        self.http = TestClient(app, raise_server_exceptions=False)
        self.audience = audience

    def send(self, method: str, path: str, body: bytes | None = None, *,
             key: SigningKey | None = None, key_id: str | None = None,
             headers: dict[str, str] | None = None) -> Any:
        content = body if body is not None else b""
        all_headers = dict(JSON) if body is not None else {}
        if key is not None and key_id is not None:
            # the server checks the signature over the decoded path (and the raw query)
            route, _, query = path.partition("?")
            target = unquote(route) + (f"?{query}" if query else "")
            # an Idempotency-Key among the headers is signed with the rest, as clients do
            all_headers |= sign_request(key, key_id, method, target, content,
                                        audience=self.audience,
                                        idempotency_key=(headers or {}).get("Idempotency-Key"))
        all_headers |= headers or {}
        return self.http.request(method, path, content=content, headers=all_headers)

    def send_json(self, method: str, path: str, value: Any, **kw: Any) -> Any:
        return self.send(method, path, json.dumps(value).encode(), **kw)


@pytest.fixture
def parties(network: Any) -> dict[str, Any]:
    payer = network.open_wallet("BKA1", wallet_class="I", deposit=1_000_000_00,
                                load=1_000_000_00)
    payee = network.open_wallet("BKA1")
    remote = network.open_wallet("BKB1")
    return {
        "network": network,
        "payer": payer,
        "payee": payee,
        "remote": remote,
        "op": Raw(network.operator_apps["BKA1"], operator_audience("BKA1")),
        "cb": Raw(network.cb_app, CENTRAL_BANK_AUDIENCE),
    }


def valid_order(p: dict[str, Any], **changes: Any) -> dict[str, Any]:
    order = payment_order(payer=p["payer"].wallet_id, payee=p["payee"].wallet_id, amount=100,
                          currency="CNY")
    order.update(changes)
    return order


def submit(p: dict[str, Any], order: Any, signature: str | None = None, **extra: Any) -> Any:
    if signature is None:
        signature = p["payer"].key.sign_json(order)
    return p["op"].send_json("POST", "/v1/payments",
                             {"order": order, "signature": signature, **extra})


def balances(p: dict[str, Any]) -> tuple[int, int, int]:
    return (p["payer"].balance().balance, p["payee"].balance().balance,
            p["remote"].balance().balance)


# ------------------------------------------------------------------ payments


def test_malformed_bodies(parties: dict[str, Any]) -> None:
    op = parties["op"]
    before = balances(parties)
    for raw in (b"{", b"not json", b"", b"[]", b"null", b'"order"', b"123",
                b'{"order": ', b"{}" * 1000, b'{"order": NaN}'):
        assert_problem(op.send("POST", "/v1/payments", raw), 422)
    # not UTF-8 at all: a 400 parse error is as clear as a 422
    assert_problem(op.send("POST", "/v1/payments", b"\xff\xfe\x00"), 400, 422)
    assert_problem(op.send("POST", "/v1/payments", b"{}", headers={"content-type": "text/plain"}),
                   422)
    assert balances(parties) == before


def test_missing_fields_wrong_types_and_extra_fields(parties: dict[str, Any]) -> None:
    before = balances(parties)
    base = valid_order(parties)
    for field in base:
        order = {k: v for k, v in base.items() if k != field}
        assert_problem(submit(parties, order), 422)
    assert_problem(parties["op"].send_json("POST", "/v1/payments", {"order": base}), 422)
    assert_problem(parties["op"].send_json("POST", "/v1/payments",
                                           {"signature": "A" * 86}), 422)
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
    assert_problem(parties["op"].send_json("POST", "/v1/payments",
                                           {"order": base, "signature": None}), 422)
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
    order = {**load_order(wallet=wallet.wallet_id, amount=1, currency="CNY"),
             "nonce": "load\x00\x00\x00\x00"}
    response = parties["op"].send_json("POST", f"/v1/wallets/{wallet.wallet_id}/load",
                                       sign_order(wallet.key, order))
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
    assert assert_problem(submit(parties, valid_order(parties, payee=typo)), 422)["code"] == \
        "invalid_wallet_id"
    unknown_op = make_wallet_id("QQQ1", 7)
    assert assert_problem(submit(parties, valid_order(parties, payee=unknown_op)), 422)["code"] \
        == "unknown_payee_operator"
    # the payer's id mistyped: nobody's key signs for it
    payer = parties["payer"].wallet_id
    payer_typo = payer[:-1] + str((int(payer[-1]) + 1) % 10)
    assert_problem(submit(parties, valid_order(parties, payer=payer_typo)), 422)
    assert_problem(submit(parties, valid_order(parties, payer=make_wallet_id("BKA1", 10**9))),
                   404)
    assert balances(parties) == before


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
    for path in ("/v1/wallets/garbage", "/v1/wallets/%00%00", f"/v1/wallets/{'B' * 20}",
                 f"/v1/wallets/{wallet.wallet_id}x", "/v1/wallets/" + "9" * 5000):
        assert_problem(staff("GET", path), 422, 404)
    history = f"/v1/wallets/{wallet.wallet_id}/history"
    for query in ("limit=0", "limit=501", "limit=abc", "before=0", "before=-5", "before=x",
                  "limit=1e3"):
        assert_problem(staff("GET", f"{history}?{query}"), 422)
    idem = {"Idempotency-Key": str(uuid.uuid4())}
    for path in ("/v1/admin/customers/abc/deposit", "/v1/admin/customers/-1/deposit",
                 "/v1/admin/customers/1.5/deposit", "/v1/admin/customers/0/deposit"):
        assert_problem(staff("POST", path, b'{"amount": 1}', **idem), 422, 404)
    deposit = f"/v1/admin/customers/{customer}/deposit"
    for raw in (b"{", b'{"amount": 0}', b'{"amount": -3}', b'{"amount": "3"}',
                b'{"amount": 3, "x": 1}', b'{"amount": 1e30}', b"[]",
                json.dumps({"amount": 10**16}).encode()):
        assert_problem(staff("POST", deposit, raw, **{"Idempotency-Key": str(uuid.uuid4())}),
                       422)
    assert_problem(staff("POST", deposit, b'{"amount": 1}'), 422)  # no Idempotency-Key
    assert_problem(staff("POST", deposit, b'{"amount": 1}', **{"Idempotency-Key": "k" * 101}),
                   422)
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
        response = op.send("POST", path, b'{"amount": 1}', key=staff_key, key_id=staff_id,
                           headers={"Idempotency-Key": str(uuid.uuid4())})
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
        statuses[raw] = op.send("POST", "/v1/wallets", raw, key=key,
                                key_id="new-wallet").status_code
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
        {"public_key": key.public_key, "wallet_class": "V",
         "customer": {"display_name": "A", "phone": "+8613800000000"}},
        {"public_key": key.public_key, "customer": {"display_name": "A", "phone": "call me"}},
        {"public_key": key.public_key, "customer": {"display_name": "", "phone": "+86138000"}},
        {"public_key": key.public_key,
         "customer": {"display_name": "A" * 201, "phone": "+8613800000000"}},
        {"public_key": key.public_key, "extra": 1,
         "customer": {"display_name": "A", "phone": "+8613800000000"}},
    ]
    for value in bodies:
        raw = json.dumps(value).encode()
        # signed as the new wallet (the key id resolver reads the body) and as staff
        assert_problem(op.send("POST", "/v1/wallets", raw, key=key, key_id="new-wallet"))
        assert_problem(op.send("POST", "/v1/wallets", raw, key=staff_key,
                               key_id="operator:BKA1"))
    assert_problem(op.send("POST", "/v1/wallets", b"\xff\xfe", key=key, key_id="new-wallet"))
    assert net.staff("BKA1").request("GET", "/v1/admin/audit")["wallet_count"] == count


def test_interop_garbage_is_refused(parties: dict[str, Any]) -> None:
    net, op = parties["network"], parties["op"]
    peer_key, peer_id = net.operator_keys["BKB1"], "operator:BKB1"
    bodies: list[Any] = [
        {}, [], {"receipt": {}, "payee_tokens": [], "kind": "payment", "reference": "r",
                 "payee_wallet": "x"},
        {"receipt": {}, "payee_tokens": [{}], "kind": "payment", "reference": "r",
         "payee_wallet": "x"},
        {"receipt": {"document": "x", "signature": 5}, "payee_tokens": [{"a": 1}],
         "kind": "return", "reference": "r", "payee_wallet": "x"},
        {"receipt": {"document": {}, "signature": "A" * 86}, "payee_tokens": [1],
         "kind": "payment", "reference": "r", "payee_wallet": "x"},
        {"receipt": {}, "payee_tokens": [{}], "kind": "gift", "reference": "r",
         "payee_wallet": "x"},
    ]
    for value in bodies:
        response = op.send_json("POST", "/v1/interop/settlements", value, key=peer_key,
                                key_id=peer_id)
        assert_problem(response, 409, 422)
    assert parties["payee"].balance().balance == 0


# ------------------------------------------------------------------ central bank


def test_central_bank_bad_input(parties: dict[str, Any]) -> None:
    net, cb = parties["network"], parties["cb"]
    op_key, op_id = net.operator_keys["BKA1"], "operator:BKA1"
    admin_key = net.admin_key

    def as_op(method: str, path: str, raw: bytes | None = None, **headers: str) -> Any:
        return cb.send(method, path, raw, key=op_key, key_id=op_id, headers=headers)

    def as_admin(method: str, path: str, raw: bytes | None = None, **headers: str) -> Any:
        return cb.send(method, path, raw, key=admin_key, key_id="admin", headers=headers)

    before = net.admin.request("GET", "/v1/admin/audit")
    for raw in (b"{", b"", b"[]", b'{"amount": 0}', b'{"amount": -1}',
                b'{"amount": 1.5}', b'{"amount": 1e400}', b'{"amount": 5, "bonus": 1}',
                json.dumps({"amount": 10**15 + 1}).encode(), json.dumps({"amount": 2**64}).encode(),
                b'{"amount": null}', b'{"amount": "1.5"}', b'{"amount": [5]}'):
        assert_problem(as_op("POST", "/v1/issuance", raw,
                             **{"Idempotency-Key": str(uuid.uuid4())}), 422)
    assert_problem(as_op("POST", "/v1/issuance", b'{"amount": 5}'), 422)  # no key
    for raw in (b'{"serials": [], "amount": 1}', b'{"serials": ["x"], "amount": 1}',
                b'{"serials": ["\\u0000"], "amount": 1}', b'{"serials": "abc", "amount": 1}',
                json.dumps({"serials": [str(uuid.uuid4())] * 1001, "amount": 1}).encode()):
        assert_problem(as_op("POST", "/v1/redemption", raw,
                             **{"Idempotency-Key": str(uuid.uuid4())}), 422, 404)
    for raw in (b'{"serials": ["x"], "outputs": [1]}', b'{"serials": ["x"], "outputs": []}',
                b'{"serials": ["x"], "outputs": [-1]}',
                json.dumps({"serials": [str(uuid.uuid4())], "outputs": [1] * 101}).encode()):
        assert_problem(as_op("POST", "/v1/tokens/split", raw,
                             **{"Idempotency-Key": str(uuid.uuid4())}), 422, 404)
    for value in ({"payee_operator": "bkb1", "amount": 1, "serials": ["x"], "reference": "r"},
                  {"payee_operator": "BKB1", "amount": 1, "serials": ["x"], "reference": ""},
                  {"payee_operator": "BKB1", "amount": 1, "serials": ["x"],
                   "reference": "r" * 101},
                  {"payee_operator": "BKB1\x00", "amount": 1, "serials": ["x"],
                   "reference": "r"}):
        assert_problem(as_op("POST", "/v1/settlements", json.dumps(value).encode(),
                             **{"Idempotency-Key": str(uuid.uuid4())}), 422, 404)
    for path in ("/v1/tokens/not-a-uuid", "/v1/tokens/%00", f"/v1/tokens/{'f' * 400}"):
        assert_problem(as_admin("GET", path), 422, 404)
    for code in ("ZZZZ", "a" * 300, "%E2%82%AC"):
        assert_problem(as_admin("PUT", f"/v1/admin/operators/{code}/quota",
                                b'{"quota": 5}'), 404, 422)
        assert_problem(as_admin("POST", f"/v1/admin/operators/{code}/reserves",
                                b'{"amount": 5}', **{"Idempotency-Key": str(uuid.uuid4())}),
                       404, 422)
    for value in ({"code": "bad", "name": "x", "public_key": "k" * 43, "quota": 1},
                  {"code": "NEW1", "name": "", "public_key": "k" * 43, "quota": 1},
                  {"code": "NEW1", "name": "x", "public_key": "k" * 43, "quota": -1},
                  {"code": "NEW1", "name": "x", "public_key": "k", "quota": 1}):
        assert_problem(as_admin("POST", "/v1/admin/operators", json.dumps(value).encode()), 422)
    for query in ("since=garbage", "since=2026-01-01T00:00:00", "limit=0", "limit=5000"):
        assert_problem(as_admin("GET", f"/v1/analysis/alerts?{query}"), 422)
    assert_problem(as_op("GET", "/v1/nothing"), 404)
    after = net.admin.request("GET", "/v1/admin/audit")
    assert after["issued"] == before["issued"] and after["ok"]


def test_central_bank_amounts_must_be_json_integers(parties: dict[str, Any]) -> None:
    """Money is an integer of minor units on the wire too: a string, a float or a boolean is a
    type error (as at the operators, whose schemas are strict), not 5, 1 or 1 fen."""
    net, cb = parties["network"], parties["cb"]
    key = net.operator_keys["BKA1"]
    statuses = {}
    for raw in (b'{"amount": "5"}', b'{"amount": 1.0}', b'{"amount": true}'):
        response = cb.send("POST", "/v1/issuance", raw, key=key, key_id="operator:BKA1",
                           headers={"Idempotency-Key": str(uuid.uuid4())})
        statuses[raw] = response.status_code
    for raw in (b'{"quota": "5"}', b'{"quota": false}'):
        response = cb.send("PUT", "/v1/admin/operators/BKB1/quota", raw, key=net.admin_key,
                           key_id="admin")
        statuses[raw] = response.status_code
    assert all(status == 422 for status in statuses.values()), statuses
    assert net.admin.request("GET", "/v1/admin/audit")["issued"] == \
        net.state("BKA1").ctx.water_marks.target  # only the float the fixture's loads obtained


def test_central_bank_nul_in_path_and_query_is_refused(parties: dict[str, Any]) -> None:
    """%00 is legal on the wire and decodes to NUL, which PostgreSQL text cannot hold: a 4xx
    (no such operator / invalid filter), not a 500."""
    net, cb = parties["network"], parties["cb"]
    statuses = {}
    for method, path, raw, headers in (
        ("PUT", "/v1/admin/operators/%00AB/quota", b'{"quota": 5}', {}),
        ("POST", "/v1/admin/operators/B%00B1/reserves", b'{"amount": 5}',
         {"Idempotency-Key": str(uuid.uuid4())}),
        ("GET", "/v1/analysis/alerts?rule=%00", None, {}),
        ("GET", "/v1/analysis/alerts?wallet=%00", None, {}),
        ("GET", "/v1/analysis/alerts?operator=%00", None, {}),
    ):
        response = cb.send(method, path, raw, key=net.admin_key, key_id="admin", headers=headers)
        statuses[path] = response.status_code
    new = {"code": "NEW1", "name": "nul\x00name", "public_key": SigningKey.generate().public_key,
           "quota": 1}
    response = cb.send_json("POST", "/v1/admin/operators", new, key=net.admin_key,
                            key_id="admin")
    statuses["register operator, NUL in name"] = response.status_code
    assert all(400 <= status < 500 for status in statuses.values()), statuses


# ------------------------------------------------------------------ fuzz

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False), st.text(max_size=30), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _field_strategies(p: dict[str, Any]) -> dict[str, Any]:
    now = iso(utcnow())
    ids = [p["payer"].wallet_id, p["payee"].wallet_id, p["remote"].wallet_id]
    return {
        "type": st.one_of(st.just("payment"), JUNK),
        "payer": st.one_of(st.just(ids[0]), st.sampled_from(ids), JUNK),
        "payee": st.one_of(st.sampled_from(ids[1:]), st.sampled_from(ids),
                           st.text(alphabet="BKA10123456789", min_size=20, max_size=20), JUNK),
        "amount": st.one_of(st.integers(min_value=1, max_value=5_000),
                            st.integers(min_value=-(2**64), max_value=2**64), JUNK),
        "currency": st.one_of(st.just("CNY"), st.sampled_from(["USD", "cny", "CN"]), JUNK),
        "nonce": st.one_of(st.text(min_size=8, max_size=64), JUNK),
        "created_at": st.one_of(st.just(now), st.text(max_size=40), JUNK),
        "memo": st.one_of(st.text(max_size=150), JUNK),
    }


def test_fuzz_payment_orders_never_500(parties: dict[str, Any]) -> None:
    p = parties
    fields = _field_strategies(p)
    outcomes: dict[int, int] = {}

    @settings(max_examples=50, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        order = valid_order(p, payee=data.draw(st.sampled_from(
            [p["payee"].wallet_id, p["remote"].wallet_id])),
            amount=data.draw(st.integers(min_value=1, max_value=5_000)))
        if data.draw(st.booleans()):
            order["memo"] = data.draw(st.text(max_size=140))
        for _ in range(data.draw(st.integers(min_value=0, max_value=3))):
            field = data.draw(st.sampled_from([*fields, "extra"]))
            if field == "extra":
                order[data.draw(st.text(min_size=1, max_size=5))] = data.draw(JUNK)
            elif data.draw(st.booleans()):
                order[field] = data.draw(fields[field])
            else:
                order.pop(field, None)
        key = p["payer"].key if data.draw(st.integers(0, 9)) else SigningKey.generate()
        try:
            signature = key.sign_json(order)
        except (TypeError, ValueError):  # unserialisable junk: send a dummy signature
            signature = "A" * 86
        response = p["op"].send_json("POST", "/v1/payments",
                                     {"order": order, "signature": signature})
        outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
        if response.status_code != 201:
            assert_problem(response)

    run()
    assert all(status < 500 for status in outcomes), outcomes
    assert outcomes.get(201, 0) > 0 and len(outcomes) > 1, outcomes
    net = p["network"]
    net.run_jobs()
    central = net.admin.request("GET", "/v1/admin/audit")
    assert central["ok"]
    for code in ("BKA1", "BKB1"):
        report = net.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], report["checks"]
        assert central["operators"][code]["live_token_value"] == report["vault_token_value"]


def test_signed_order_roundtrip_is_accepted(parties: dict[str, Any]) -> None:
    """Control for the tests above: the same client code with valid values succeeds."""
    receipt = parties["payer"].submit(sign_order(parties["payer"].key, valid_order(parties)))
    assert receipt.status == "completed"


# ------------------------------------------------------------------ duplicate JSON keys


def with_duplicate(value: dict[str, Any], key: str, first: Any) -> str:
    """`value` as JSON with `key` written twice: `first`, then its real value (which json.loads
    would keep, and another parser might not)."""
    return "{" + json.dumps(key) + ": " + json.dumps(first) + ", " + json.dumps(value)[1:]


def test_duplicate_json_keys_are_refused(parties: dict[str, Any]) -> None:
    """Finding 7: a body with a repeated key means different things to different parsers, so it
    is refused (422 `duplicate_json_key`) everywhere: in signed orders (whose signature covers
    the last value only), in signed envelopes, and in unsigned bodies."""
    net, op, cb = parties["network"], parties["op"], parties["cb"]
    payer = parties["payer"]
    before = balances(parties)

    # a payment order whose signed amount is 100, carrying another amount first
    order = valid_order(parties)
    signature = payer.key.sign_json(order)
    raw = ('{"order": ' + with_duplicate(order, "amount", 999_999)
           + f', "signature": "{signature}"}}')
    body = assert_problem(op.send("POST", "/v1/payments", raw.encode()), 422)
    assert body["code"] == "duplicate_json_key" and "amount" in body["detail"]
    # the same at the top level of the body, and in the batch path
    signed = {"order": order, "signature": signature}
    raw = with_duplicate(signed, "order", valid_order(parties, amount=5))
    assert assert_problem(op.send("POST", "/v1/payments", raw.encode()), 422)["code"] == \
        "duplicate_json_key"
    raw = '{"orders": [' + with_duplicate(signed, "signature", "x") + "]}"
    assert assert_problem(op.send("POST", "/v1/payments/batch", raw.encode()), 422)["code"] == \
        "duplicate_json_key"
    # a load order
    load = load_order(wallet=payer.wallet_id, amount=100, currency="CNY")
    raw = ('{"order": ' + with_duplicate(load, "wallet", parties["payee"].wallet_id)
           + f', "signature": "{payer.key.sign_json(load)}"}}')
    assert assert_problem(op.send("POST", f"/v1/wallets/{payer.wallet_id}/load", raw.encode()),
                          422)["code"] == "duplicate_json_key"
    assert balances(parties) == before

    # wallet opening signed with the new wallet's key (the key id resolver reads the body)
    count = net.staff("BKA1").request("GET", "/v1/admin/audit")["wallet_count"]
    key = SigningKey.generate()
    opening = {"public_key": key.public_key,
               "customer": {"display_name": "A", "phone": "+8613800000099"}}
    raw = with_duplicate(opening, "public_key", SigningKey.generate().public_key)
    response = op.send("POST", "/v1/wallets", raw.encode(), key=key, key_id="new-wallet")
    assert assert_problem(response, 422)["code"] == "duplicate_json_key"
    assert net.staff("BKA1").request("GET", "/v1/admin/audit")["wallet_count"] == count

    # a signed request to the central bank
    issued = net.admin.request("GET", "/v1/admin/audit")["issued"]
    raw = with_duplicate({"amount": 100}, "amount", 10**9)
    response = cb.send("POST", "/v1/issuance", raw.encode(), key=net.operator_keys["BKA1"],
                       key_id="operator:BKA1", headers={"Idempotency-Key": str(uuid.uuid4())})
    assert assert_problem(response, 422)["code"] == "duplicate_json_key"
    assert net.admin.request("GET", "/v1/admin/audit")["issued"] == issued

    # the same keys in different objects are no duplicates
    receipt = payer.submit(sign_order(payer.key, valid_order(parties)))
    assert receipt.status == "completed"


def test_every_route_parses_bodies_strictly(network: Any) -> None:
    """Every route of both services that takes a body parses it through `StrictJSONRoute`."""
    from fastapi.routing import APIRoute

    from cbdc.web.auth import StrictJSONRoute

    def api_routes(routes: list[Any]) -> list[APIRoute]:
        found: list[APIRoute] = []
        for route in routes:
            if isinstance(route, APIRoute):
                found.append(route)
            elif hasattr(route, "original_router"):  # an included router (FastAPI >= 0.13x)
                found += api_routes(route.original_router.routes)
        return found

    for app in (network.cb_app, *network.operator_apps.values()):
        routes = [r for r in api_routes(app.routes) if r.body_field is not None]
        assert routes and all(isinstance(r, StrictJSONRoute) for r in routes), [
            r.path for r in routes if not isinstance(r, StrictJSONRoute)
        ]


DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


def test_deeply_nested_json_is_refused_not_500(parties: dict[str, Any]) -> None:
    """Review: JSON nested a hundred thousand deep made the parser raise RecursionError (500)
    on /v1/payments, /v1/regulator/disclosures, wallet opening and the central bank's routes.
    It gets what malformed JSON gets: 422 `validation_error`."""
    net, op, cb = parties["network"], parties["op"], parties["cb"]
    before = balances(parties)
    for deep in (DEEP_ARRAY, DEEP_OBJECT):
        for path in ("/v1/payments", "/v1/payments/batch", "/v1/regulator/disclosures",
                     "/v1/wallets", f"/v1/wallets/{parties['payer'].wallet_id}/load"):
            body = assert_problem(op.send("POST", path, deep), 422)
            assert body["code"] == "validation_error", (path, body)
        # the `new-wallet` key id makes the resolver parse the body, whatever its content type
        for content_type in ("application/json", "text/plain"):
            response = op.send("POST", "/v1/wallets", deep, key=SigningKey.generate(),
                               key_id="new-wallet", headers={"content-type": content_type})
            assert assert_problem(response, 422)["code"] == "validation_error"
        for path in ("/v1/issuance", "/v1/clearing/submissions", "/v1/settlements"):
            response = cb.send("POST", path, deep, key=net.operator_keys["BKA1"],
                               key_id="operator:BKA1",
                               headers={"Idempotency-Key": str(uuid.uuid4())})
            assert assert_problem(response, 422)["code"] == "validation_error", path
    assert balances(parties) == before


def test_oversized_bodies_are_refused_413(parties: dict[str, Any]) -> None:
    """Review: there was no body size limit (a 20 MB body was read and parsed). Over the limit
    is 413 `body_too_large`, from the Content-Length before reading, or from the bytes read
    when the body comes chunked without one."""
    from cbdc.web.app import DEFAULT_MAX_BODY_BYTES

    op, cb = parties["op"], parties["cb"]
    huge = b'{"a": "' + b"x" * 20_000_000 + b'"}'
    for raw, path in ((op, "/v1/payments"), (op, "/v1/wallets"), (cb, "/v1/issuance")):
        body = assert_problem(raw.send("POST", path, huge), 413)
        assert body["code"] == "body_too_large"

    def chunks() -> Any:
        for _ in range(DEFAULT_MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536

    response = op.http.post("/v1/payments", content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert assert_problem(response, 413)["code"] == "body_too_large"


def test_body_limit_is_a_setting_with_room_for_the_largest_legitimate_bodies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cbdc.web.app import DEFAULT_MAX_BODY_BYTES, base_app
    from central_bank.schemas import ClearingSubmission
    from operators.schemas import SignedPaymentBatch

    monkeypatch.setenv("CBDC_MAX_BODY_BYTES", "100")
    app = base_app("limit", "test")

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"n": len(await request.body())}

    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/echo", content=b"x" * 100).json() == {"n": 100}
    assert assert_problem(client.post("/echo", content=b"x" * 101), 413)["code"] == \
        "body_too_large"

    # the largest bodies the schemas allow, at their longest fields, fit four times over
    item = {"reference": "r" * 100, "payee_wallet": "w" * 40, "payer_alias": "a" * 64,
            "amount": 10**15}
    submission = {"submission_id": str(uuid.uuid4()), "payee_operator": "BKB1", "gross": 10**18,
                  "items": [item] * 10_000}
    ClearingSubmission.model_validate(submission)
    assert len(json.dumps(submission)) * 4 < DEFAULT_MAX_BODY_BYTES
    key = SigningKey.generate()
    order = payment_order(payer=make_wallet_id("BKA1", 1), payee=make_wallet_id("BKB1", 2),
                          amount=10**15, currency="CNY", memo="\u4e2d" * 140)
    batch = {"orders": [{"order": order, "signature": key.sign_json(order)}] * 1000}
    SignedPaymentBatch.model_validate(batch)
    assert len(json.dumps(batch)) * 4 < DEFAULT_MAX_BODY_BYTES


def test_signed_client_survives_deeply_nested_answers() -> None:
    """JSON from the wire is parsed safely on the client side too: an answer nested too deep
    to parse is a `RemoteError` / `RemoteUnavailable` like any unparsable answer, never a
    RecursionError escaping into an operator's outbox."""
    import httpx

    from cbdc.http import RemoteError, RemoteUnavailable, SignedClient

    for status, expected in ((400, RemoteError), (503, RemoteUnavailable)):
        transport = httpx.MockTransport(lambda _, s=status: httpx.Response(s, content=DEEP_ARRAY))
        client = SignedClient(httpx.Client(base_url="http://x", transport=transport))
        with pytest.raises(expected):
            client.request("GET", "/v1/info", signed=False)
