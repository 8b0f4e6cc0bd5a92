"""Signed envelopes on the wire: missing, forged, tampered, stale and replayed requests are
refused by both the central bank and an operator, with stable problem codes."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from cbdc.crypto import SigningKey
from cbdc.envelope import (
    H_KEY,
    H_NONCE,
    H_SIG,
    H_TS,
    MAX_SKEW_SECONDS,
    sign_request,
    signing_string,
    verify_request,
)
from cbdc.errors import BadSignature, Unauthenticated

JSON = {"content-type": "application/json"}


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert body["status"] == status and body["code"] == code, body
    return body


def signed_headers(
    key: SigningKey, key_id: str, method: str, target: str, body: bytes = b"", **extra: str
) -> dict[str, str]:
    return {**sign_request(key, key_id, method, target, body), **extra}


def stale_headers(key: SigningKey, key_id: str, method: str, target: str, body: bytes,
                  age: int) -> dict[str, str]:
    ts = str(int(time.time()) - age)
    nonce = uuid.uuid4().hex
    sig = key.sign(signing_string(method, target, ts, nonce, body))
    return {H_KEY: key_id, H_TS: ts, H_NONCE: nonce, H_SIG: sig}


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
    for missing in (H_TS, H_NONCE, H_SIG):
        partial = {k: v for k, v in headers.items() if k != missing}
        assert_problem(cb.get("/v1/admin/audit", headers=partial), 401, "unauthenticated")

    # unknown key id
    assert_problem(
        cb.get("/v1/admin/audit",
               headers=signed_headers(admin_key, "operator:NOPE", "GET", "/v1/admin/audit")),
        401, "unauthenticated",
    )
    # the admin's key id, signed by someone else
    forged = signed_headers(SigningKey.generate(), "admin", "GET", "/v1/admin/audit")
    assert_problem(cb.get("/v1/admin/audit", headers=forged), 401, "bad_signature")
    # an operator's key id signed by another operator's key
    other = signed_headers(network.operator_keys["BKB1"], "operator:BKA1", "GET",
                           "/v1/operators/me")
    assert_problem(cb.get("/v1/operators/me", headers=other), 401, "bad_signature")
    # a garbage signature
    garbage = {**signed_headers(admin_key, "admin", "GET", "/v1/admin/audit"), H_SIG: "!!@@##"}
    assert_problem(cb.get("/v1/admin/audit", headers=garbage), 401, "bad_signature")
    # a bad timestamp / nonce
    bad_ts = {**signed_headers(admin_key, "admin", "GET", "/v1/admin/audit"), H_TS: "yesterday"}
    assert_problem(cb.get("/v1/admin/audit", headers=bad_ts), 401, "unauthenticated")
    short_nonce = {**signed_headers(admin_key, "admin", "GET", "/v1/admin/audit"),
                   H_NONCE: "abc"}
    assert_problem(cb.get("/v1/admin/audit", headers=short_nonce), 401, "unauthenticated")


def test_central_bank_refuses_tampered_body_and_path(network: Any) -> None:
    cb, key = network.cb, network.operator_keys["BKA1"]
    body = b'{"amount": 100}'
    headers = signed_headers(key, "operator:BKA1", "POST", "/v1/issuance", body,
                             **JSON, **{"Idempotency-Key": "tamper-test-1"})
    response = cb.post("/v1/issuance", content=b'{"amount": 100000}', headers=headers)
    assert_problem(response, 401, "bad_signature")
    # signed for one path, sent to another
    headers = signed_headers(key, "operator:BKA1", "POST", "/v1/issuance", body,
                             **JSON, **{"Idempotency-Key": "tamper-test-2"})
    assert_problem(cb.post("/v1/redemption", content=body, headers=headers), 401, "bad_signature")
    # signed for GET, sent as POST
    headers = signed_headers(key, "operator:BKA1", "GET", "/v1/issuance", body,
                             **JSON, **{"Idempotency-Key": "tamper-test-3"})
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
    headers = signed_headers(key, "operator:BKA1", "POST", "/v1/issuance", body,
                             **JSON, **{"Idempotency-Key": "replay-test-0001"})
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
    headers = signed_headers(key, "operator:BKA1", "POST", "/v1/issuance", big,
                             **JSON, **{"Idempotency-Key": "replay-test-0002"})
    assert_problem(cb.post("/v1/issuance", content=big, headers=headers), 422,
                   "insufficient_reserves")
    network.admin.request("POST", "/v1/admin/operators/BKA1/reserves",
                          {"amount": 10**12}, idempotency_key="more-reserves")
    assert_problem(cb.post("/v1/issuance", content=big, headers=headers), 409,
                   "replayed_request")
    assert network.admin.request("GET", "/v1/admin/audit")["issued"] == 12345


# ------------------------------------------------------------------ operator


def test_operator_refuses_unsigned_forged_stale_and_replayed_requests(network: Any) -> None:
    http, staff_key = network.operator_http["BKA1"], network.operator_keys["BKA1"]
    target = "/v1/admin/audit"
    assert_problem(http.get(target), 401, "unauthenticated")
    forged = signed_headers(SigningKey.generate(), "operator:BKA1", "GET", target)
    assert_problem(http.get(target, headers=forged), 401, "bad_signature")
    stale = stale_headers(staff_key, "operator:BKA1", "GET", target, b"", MAX_SKEW_SECONDS + 5)
    assert_problem(http.get(target, headers=stale), 401, "unauthenticated")
    assert_problem(
        http.get(target, headers=signed_headers(staff_key, "nobody", "GET", target)),
        401, "unauthenticated",
    )

    headers = signed_headers(staff_key, "operator:BKA1", "GET", target)
    assert http.get(target, headers=headers).status_code == 200
    assert_problem(http.get(target, headers=headers), 409, "replayed_request")

    # a wallet's reads are signed by the wallet key; another wallet's key is refused
    alice = network.open_wallet("BKA1")
    bob = network.open_wallet("BKA1")
    path = f"/v1/wallets/{alice.wallet_id}"
    ok = http.get(path, headers=signed_headers(alice.key, f"wallet:{alice.wallet_id}", "GET", path))
    assert ok.status_code == 200 and ok.json()["wallet_id"] == alice.wallet_id
    as_bob = signed_headers(bob.key, f"wallet:{bob.wallet_id}", "GET", path)
    assert_problem(http.get(path, headers=as_bob), 403, "forbidden")
    bob_claims_alice = signed_headers(bob.key, f"wallet:{alice.wallet_id}", "GET", path)
    assert_problem(http.get(path, headers=bob_claims_alice), 401, "bad_signature")

    # a deposit credit replayed with the same envelope moves money once
    customer = alice.balance().customer_id
    dpath = f"/v1/admin/customers/{customer}/deposit"
    body = b'{"amount": 5000}'
    headers = signed_headers(staff_key, "operator:BKA1", "POST", dpath, body, **JSON,
                             **{"Idempotency-Key": "deposit-replay-1"})
    assert http.post(dpath, content=body, headers=headers).status_code == 200
    assert_problem(http.post(dpath, content=body, headers=headers), 409, "replayed_request")
    tampered = http.post(dpath, content=b'{"amount": 5000000}', headers=headers)
    assert tampered.status_code == 401
    assert alice.balance().deposit_balance == 5000

    # another operator's staff key is no staff key here
    other = signed_headers(network.operator_keys["BKB1"], "operator:BKB1", "GET", target)
    assert_problem(http.get(target, headers=other), 403, "forbidden")


def test_verify_request_unit() -> None:
    key = SigningKey.generate()
    body = b'{"x": 1}'
    headers = sign_request(key, "admin", "post", "/p?q=1", body)
    verified = verify_request(public_key=key.public_key, method="POST", target="/p?q=1",
                              headers=headers, body=body)
    assert verified.key_id == "admin" and verified.nonce == headers[H_NONCE]
    with pytest.raises(BadSignature):
        verify_request(public_key=key.public_key, method="POST", target="/p?q=2",
                       headers=headers, body=body)
    with pytest.raises(BadSignature):
        verify_request(public_key=SigningKey.generate().public_key, method="POST",
                       target="/p?q=1", headers=headers, body=body)
    with pytest.raises(Unauthenticated):
        verify_request(public_key=key.public_key, method="POST", target="/p?q=1",
                       headers=headers, body=body, now=time.time() + MAX_SKEW_SECONDS + 1)
    with pytest.raises(Unauthenticated):
        verify_request(public_key=key.public_key, method="POST", target="/p?q=1",
                       headers={H_KEY: "admin"}, body=body)
