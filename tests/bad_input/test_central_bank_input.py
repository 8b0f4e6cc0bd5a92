"""Bad input at the central bank: bodies, amounts that are not JSON integers, NUL in paths."""

from __future__ import annotations

import json
import uuid
from typing import Any

from cbdc.crypto import SigningKey
from tests.bad_input.helpers import assert_problem

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
    for raw in (
        b"{",
        b"",
        b"[]",
        b'{"amount": 0}',
        b'{"amount": -1}',
        b'{"amount": 1.5}',
        b'{"amount": 1e400}',
        b'{"amount": 5, "bonus": 1}',
        json.dumps({"amount": 10**15 + 1}).encode(),
        json.dumps({"amount": 2**64}).encode(),
        b'{"amount": null}',
        b'{"amount": "1.5"}',
        b'{"amount": [5]}',
    ):
        assert_problem(
            as_op("POST", "/v1/issuance", raw, **{"Idempotency-Key": str(uuid.uuid4())}), 422
        )
    assert_problem(as_op("POST", "/v1/issuance", b'{"amount": 5}'), 422)  # no key
    for raw in (
        b'{"serials": [], "amount": 1}',
        b'{"serials": ["x"], "amount": 1}',
        b'{"serials": ["\\u0000"], "amount": 1}',
        b'{"serials": "abc", "amount": 1}',
        json.dumps({"serials": [str(uuid.uuid4())] * 1001, "amount": 1}).encode(),
    ):
        assert_problem(
            as_op("POST", "/v1/redemption", raw, **{"Idempotency-Key": str(uuid.uuid4())}), 422, 404
        )
    for raw in (
        b'{"serials": ["x"], "outputs": [1]}',
        b'{"serials": ["x"], "outputs": []}',
        b'{"serials": ["x"], "outputs": [-1]}',
        json.dumps({"serials": [str(uuid.uuid4())], "outputs": [1] * 101}).encode(),
    ):
        assert_problem(
            as_op("POST", "/v1/tokens/split", raw, **{"Idempotency-Key": str(uuid.uuid4())}),
            422,
            404,
        )
    for value in (
        {"payee_operator": "bkb1", "amount": 1, "serials": ["x"], "reference": "r"},
        {"payee_operator": "BKB1", "amount": 1, "serials": ["x"], "reference": ""},
        {"payee_operator": "BKB1", "amount": 1, "serials": ["x"], "reference": "r" * 101},
        {"payee_operator": "BKB1\x00", "amount": 1, "serials": ["x"], "reference": "r"},
    ):
        assert_problem(
            as_op(
                "POST",
                "/v1/settlements",
                json.dumps(value).encode(),
                **{"Idempotency-Key": str(uuid.uuid4())},
            ),
            422,
            404,
        )
    for path in ("/v1/tokens/not-a-uuid", "/v1/tokens/%00", f"/v1/tokens/{'f' * 400}"):
        assert_problem(as_admin("GET", path), 422, 404)
    for code in ("ZZZZ", "a" * 300, "%E2%82%AC"):
        assert_problem(
            as_admin("PUT", f"/v1/admin/operators/{code}/quota", b'{"quota": 5}'), 404, 422
        )
        assert_problem(
            as_admin(
                "POST",
                f"/v1/admin/operators/{code}/reserves",
                b'{"amount": 5}',
                **{"Idempotency-Key": str(uuid.uuid4())},
            ),
            404,
            422,
        )
    for value in (
        {"code": "bad", "name": "x", "public_key": "k" * 43, "quota": 1},
        {"code": "NEW1", "name": "", "public_key": "k" * 43, "quota": 1},
        {"code": "NEW1", "name": "x", "public_key": "k" * 43, "quota": -1},
        {"code": "NEW1", "name": "x", "public_key": "k", "quota": 1},
    ):
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
        response = cb.send(
            "POST",
            "/v1/issuance",
            raw,
            key=key,
            key_id="operator:BKA1",
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        statuses[raw] = response.status_code
    for raw in (b'{"quota": "5"}', b'{"quota": false}'):
        response = cb.send(
            "PUT", "/v1/admin/operators/BKB1/quota", raw, key=net.admin_key, key_id="admin"
        )
        statuses[raw] = response.status_code
    assert all(status == 422 for status in statuses.values()), statuses
    assert (
        net.admin.request("GET", "/v1/admin/audit")["issued"]
        == net.state("BKA1").ctx.water_marks.target
    )  # only the float the fixture's loads obtained


def test_central_bank_nul_in_path_and_query_is_refused(parties: dict[str, Any]) -> None:
    """%00 is legal on the wire and decodes to NUL, which PostgreSQL text cannot hold: a 4xx
    (no such operator / invalid filter), not a 500."""
    net, cb = parties["network"], parties["cb"]
    statuses = {}
    for method, path, raw, headers in (
        ("PUT", "/v1/admin/operators/%00AB/quota", b'{"quota": 5}', {}),
        (
            "POST",
            "/v1/admin/operators/B%00B1/reserves",
            b'{"amount": 5}',
            {"Idempotency-Key": str(uuid.uuid4())},
        ),
        ("GET", "/v1/analysis/alerts?rule=%00", None, {}),
        ("GET", "/v1/analysis/alerts?wallet=%00", None, {}),
        ("GET", "/v1/analysis/alerts?operator=%00", None, {}),
    ):
        response = cb.send(method, path, raw, key=net.admin_key, key_id="admin", headers=headers)
        statuses[path] = response.status_code
    new = {
        "code": "NEW1",
        "name": "nul\x00name",
        "public_key": SigningKey.generate().public_key,
        "quota": 1,
    }
    response = cb.send_json("POST", "/v1/admin/operators", new, key=net.admin_key, key_id="admin")
    statuses["register operator, NUL in name"] = response.status_code
    assert all(400 <= status < 500 for status in statuses.values()), statuses
