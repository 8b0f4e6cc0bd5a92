"""The central bank refuses unsigned, forged, tampered, stale and replayed requests."""

from __future__ import annotations

from typing import Any

from cbdc.crypto import SigningKey
from cbdc.envelope import (
    H_AUDIENCE,
    H_NONCE,
    H_SIG,
    H_TS,
    MAX_SKEW_SECONDS,
)
from tests.auth.helpers import JSON, signed_headers, stale_headers
from tests.helpers import assert_problem

# ------------------------------------------------------------------ central bank


def test_central_bank_refuses_unsigned_and_forged_requests(network: Any) -> None:
    cb, admin_key = network.cb, network.admin_key
    assert_problem(cb.get("/v1/admin/audit"), 401, "unauthenticated")
    assert_problem(cb.get("/v1/operators"), 401, "unauthenticated")
    # public endpoints need no signature
    assert cb.get("/health").json() == {"status": "ok"}
    assert cb.get("/v1/info").json()["public_key"] == network.cb_key.public_key

    # a header missing
    headers = signed_headers(admin_key, "admin", "GET", "/v1/admin/audit")
    for missing in (H_TS, H_NONCE, H_SIG, H_AUDIENCE):
        partial = {k: v for k, v in headers.items() if k != missing}
        assert_problem(cb.get("/v1/admin/audit", headers=partial), 401, "unauthenticated")

    # unknown key id: answered like a bad signature
    assert_problem(
        cb.get(
            "/v1/admin/audit",
            headers=signed_headers(admin_key, "operator:NOPE", "GET", "/v1/admin/audit"),
        ),
        401,
        "bad_signature",
    )
    # the admin's key id, signed by someone else
    forged = signed_headers(SigningKey.generate(), "admin", "GET", "/v1/admin/audit")
    assert_problem(cb.get("/v1/admin/audit", headers=forged), 401, "bad_signature")
    # an operator's key id signed by another operator's key
    other = signed_headers(
        network.operator_keys["BKB1"], "operator:BKA1", "GET", "/v1/operators/me"
    )
    assert_problem(cb.get("/v1/operators/me", headers=other), 401, "bad_signature")
    # a garbage signature
    garbage = {**signed_headers(admin_key, "admin", "GET", "/v1/admin/audit"), H_SIG: "!!@@##"}
    assert_problem(cb.get("/v1/admin/audit", headers=garbage), 401, "bad_signature")
    # a bad timestamp / nonce
    bad_ts = {**signed_headers(admin_key, "admin", "GET", "/v1/admin/audit"), H_TS: "yesterday"}
    assert_problem(cb.get("/v1/admin/audit", headers=bad_ts), 401, "unauthenticated")
    short_nonce = {**signed_headers(admin_key, "admin", "GET", "/v1/admin/audit"), H_NONCE: "abc"}
    assert_problem(cb.get("/v1/admin/audit", headers=short_nonce), 401, "unauthenticated")


def test_central_bank_refuses_tampered_body_and_path(network: Any) -> None:
    cb, key = network.cb, network.operator_keys["BKA1"]
    body = b'{"amount": 100}'
    headers = signed_headers(
        key,
        "operator:BKA1",
        "POST",
        "/v1/issuance",
        body,
        **JSON,
        **{"Idempotency-Key": "tamper-test-1"},
    )
    response = cb.post("/v1/issuance", content=b'{"amount": 100000}', headers=headers)
    assert_problem(response, 401, "bad_signature")
    # signed for one path, sent to another
    headers = signed_headers(
        key,
        "operator:BKA1",
        "POST",
        "/v1/issuance",
        body,
        **JSON,
        **{"Idempotency-Key": "tamper-test-2"},
    )
    assert_problem(cb.post("/v1/redemption", content=body, headers=headers), 401, "bad_signature")
    # signed for GET, sent as POST
    headers = signed_headers(
        key,
        "operator:BKA1",
        "GET",
        "/v1/issuance",
        body,
        **JSON,
        **{"Idempotency-Key": "tamper-test-3"},
    )
    assert_problem(cb.post("/v1/issuance", content=body, headers=headers), 401, "bad_signature")
    # the query string is signed too
    headers = signed_headers(key, "operator:BKA1", "GET", "/v1/operators/me?x=1")
    assert_problem(cb.get("/v1/operators/me?x=2", headers=headers), 401, "bad_signature")
    # nothing was issued
    me = network.admin.request("GET", "/v1/admin/audit")
    assert me["issued"] == 0


def test_central_bank_refuses_stale_and_future_timestamps(network: Any) -> None:
    cb, key = network.cb, network.admin_key
    for age in (MAX_SKEW_SECONDS + 60, -(MAX_SKEW_SECONDS + 60)):
        headers = stale_headers(key, "admin", "GET", "/v1/admin/audit", b"", age)
        assert_problem(cb.get("/v1/admin/audit", headers=headers), 401, "unauthenticated")
    # inside the window is fine
    headers = stale_headers(key, "admin", "GET", "/v1/admin/audit", b"", 30)
    assert cb.get("/v1/admin/audit", headers=headers).status_code == 200


def test_central_bank_refuses_a_replayed_request(network: Any) -> None:
    cb, key = network.cb, network.operator_keys["BKA1"]
    body = b'{"amount": 12345}'
    headers = signed_headers(
        key,
        "operator:BKA1",
        "POST",
        "/v1/issuance",
        body,
        **JSON,
        **{"Idempotency-Key": "replay-test-0001"},
    )
    first = cb.post("/v1/issuance", content=body, headers=headers)
    assert first.status_code == 201, first.text
    second = cb.post("/v1/issuance", content=body, headers=headers)
    assert_problem(second, 409, "replayed_request")
    audit = network.admin.request("GET", "/v1/admin/audit")
    assert audit["issued"] == 12345

    # a read replayed is refused too
    headers = signed_headers(network.admin_key, "admin", "GET", "/v1/admin/audit")
    assert cb.get("/v1/admin/audit", headers=headers).status_code == 200
    assert_problem(cb.get("/v1/admin/audit", headers=headers), 409, "replayed_request")

    # a request refused for a business reason cannot be replayed later to better effect
    big = b'{"amount": 1000000000000}'
    headers = signed_headers(
        key,
        "operator:BKA1",
        "POST",
        "/v1/issuance",
        big,
        **JSON,
        **{"Idempotency-Key": "replay-test-0002"},
    )
    assert_problem(
        cb.post("/v1/issuance", content=big, headers=headers), 422, "insufficient_reserves"
    )
    network.admin.request(
        "POST",
        "/v1/admin/operators/BKA1/reserves",
        {"amount": 10**12},
        idempotency_key="more-reserves",
    )
    assert_problem(cb.post("/v1/issuance", content=big, headers=headers), 409, "replayed_request")
    assert network.admin.request("GET", "/v1/admin/audit")["issued"] == 12345
