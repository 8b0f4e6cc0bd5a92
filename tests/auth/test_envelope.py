"""The request envelope in detail: verify_request, the signed idempotency key, oversized
timestamps, the cost of an unknown key id."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cbdc.crypto import SigningKey, sha256_hex
from cbdc.envelope import (
    H_AUDIENCE,
    H_KEY,
    H_NONCE,
    H_TS,
    H_VERSION,
    MAX_SKEW_SECONDS,
    EnvelopeVersionUnsupported,
    WrongAudience,
    sign_request,
    verify_request,
)
from cbdc.errors import BadSignature, Unauthenticated
from tests.auth.helpers import AT_A, CB, JSON, signed_headers
from tests.helpers import assert_problem


def test_verify_request_unit() -> None:
    key = SigningKey.generate()
    body = b'{"x": 1}'
    headers = sign_request(key, "admin", "post", "/p?q=1", body, audience=CB)
    assert headers[H_VERSION] == "2" and headers[H_AUDIENCE] == CB
    verified = verify_request(
        public_key=key.public_key,
        method="POST",
        target="/p?q=1",
        headers=headers,
        body=body,
        audience=CB,
    )
    assert verified.key_id == "admin" and verified.nonce == headers[H_NONCE]
    assert (verified.audience, verified.method, verified.target) == (CB, "POST", "/p?q=1")
    assert verified.body_sha256 == sha256_hex(body)
    with pytest.raises(BadSignature):
        verify_request(
            public_key=key.public_key,
            method="POST",
            target="/p?q=2",
            headers=headers,
            body=body,
            audience=CB,
        )
    with pytest.raises(BadSignature):
        verify_request(
            public_key=SigningKey.generate().public_key,
            method="POST",
            target="/p?q=1",
            headers=headers,
            body=body,
            audience=CB,
        )
    with pytest.raises(BadSignature):  # no key for the key id: the same refusal
        verify_request(
            public_key=None, method="POST", target="/p?q=1", headers=headers, body=body, audience=CB
        )
    with pytest.raises(BadSignature):  # the key id is signed too
        verify_request(
            public_key=key.public_key,
            method="POST",
            target="/p?q=1",
            headers={**headers, H_KEY: "regulator"},
            body=body,
            audience=CB,
        )
    with pytest.raises(WrongAudience):
        verify_request(
            public_key=key.public_key,
            method="POST",
            target="/p?q=1",
            headers=headers,
            body=body,
            audience=AT_A,
        )
    with pytest.raises(EnvelopeVersionUnsupported):
        verify_request(
            public_key=key.public_key,
            method="POST",
            target="/p?q=1",
            headers={k: v for k, v in headers.items() if k != H_VERSION},
            body=body,
            audience=CB,
        )
    with pytest.raises(Unauthenticated):
        verify_request(
            public_key=key.public_key,
            method="POST",
            target="/p?q=1",
            headers=headers,
            body=body,
            audience=CB,
            now=time.time() + MAX_SKEW_SECONDS + 1,
        )
    with pytest.raises(Unauthenticated):
        verify_request(
            public_key=key.public_key,
            method="POST",
            target="/p?q=1",
            headers={H_VERSION: "2", H_KEY: "admin"},
            body=body,
            audience=CB,
        )


def test_the_idempotency_key_is_signed() -> None:
    """Review finding 2: the Idempotency-Key header is in the signed text (the empty string when
    there is none), so stripping, adding or changing it in transit breaks the signature; and it
    is in the binding a response signature repeats."""
    key = SigningKey.generate()
    body = b'{"amount": 1}'
    headers = sign_request(
        key, "admin", "POST", "/p", body, audience=CB, idempotency_key="settle-0001"
    )
    assert headers["Idempotency-Key"] == "settle-0001"

    def check(h: dict[str, str]) -> Any:
        return verify_request(
            public_key=key.public_key, method="POST", target="/p", headers=h, body=body, audience=CB
        )

    assert check(headers).idempotency_key == "settle-0001"
    stripped = {k: v for k, v in headers.items() if k != "Idempotency-Key"}
    for altered in (stripped, {**headers, "Idempotency-Key": "settle-0002"}):
        with pytest.raises(BadSignature):
            check(altered)
    unkeyed = sign_request(key, "admin", "POST", "/p", body, audience=CB)
    assert "Idempotency-Key" not in unkeyed and check(unkeyed).idempotency_key == ""
    with pytest.raises(BadSignature):  # a key added to a request signed without one
        check({**unkeyed, "Idempotency-Key": "settle-0001"})


def test_idempotency_key_stripped_or_changed_on_the_wire_is_refused(network: Any) -> None:
    key, path, body = network.operator_keys["BKA1"], "/v1/issuance", b'{"amount": 5}'
    headers = signed_headers(
        key, "operator:BKA1", "POST", path, body, **JSON, **{"Idempotency-Key": "strip-test-0001"}
    )
    for altered in (
        {k: v for k, v in headers.items() if k != "Idempotency-Key"},
        {**headers, "Idempotency-Key": "strip-test-0002"},
    ):
        response = network.cb.post(path, content=body, headers=altered)
        assert_problem(response, 401, "bad_signature")
        assert "CBDC-Response-Signature" not in response.headers
    assert network.cb.post(path, content=body, headers=headers).status_code == 201


def test_oversized_timestamp_is_401_not_500(network: Any) -> None:
    """Review: a CBDC-Timestamp of 400 digits overflowed (OverflowError, 500) on every signed
    route. Only 1 to 12 ASCII digits are unix seconds."""
    key = network.operator_keys["BKA1"]
    for ts in ("9" * 400, "1" * 13, "-1", "+1700000000", " 1700000000", "1e9", ""):
        headers = {**signed_headers(key, "operator:BKA1", "GET", "/v1/operators/me"), H_TS: ts}
        assert_problem(network.cb.get("/v1/operators/me", headers=headers), 401, "unauthenticated")
        ahead = {
            **signed_headers(key, "operator:BKA1", "GET", "/v1/admin/vault", audience=AT_A),
            H_TS: ts,
        }
        assert_problem(
            network.operator_http["BKA1"].get("/v1/admin/vault", headers=ahead),
            401,
            "unauthenticated",
        )
    # non-ASCII digits (which int() would accept) are refused as well
    headers = sign_request(key, "admin", "GET", "/p", audience=CB)
    with pytest.raises(Unauthenticated):
        verify_request(
            public_key=key.public_key,
            method="GET",
            target="/p",
            headers={**headers, H_TS: "١٧٠٠٠٠٠٠٠٠"},
            body=b"",
            audience=CB,
        )


def test_unknown_key_id_costs_one_signature_verification(monkeypatch: Any) -> None:
    """An unknown key id gets the answer a bad signature gets, after the same work: one Ed25519
    verification (against a dummy key). The remaining difference is the resolver's database
    lookup of an uncached key id, which this does not cover."""
    import cbdc.envelope as envelope

    calls: list[str] = []
    real = envelope.verify

    def counting(public_key: str, message: bytes, signature: str) -> bool:
        calls.append(public_key)
        return real(public_key, message, signature)

    monkeypatch.setattr(envelope, "verify", counting)
    key = SigningKey.generate()
    headers = sign_request(key, "operator:ZZZ9", "GET", "/p", audience=CB)
    with pytest.raises(BadSignature) as unknown:
        verify_request(
            public_key=None, method="GET", target="/p", headers=headers, body=b"", audience=CB
        )
    assert len(calls) == 1 and calls[0] != key.public_key
    with pytest.raises(BadSignature) as wrong:
        verify_request(
            public_key=SigningKey.generate().public_key,
            method="GET",
            target="/p",
            headers=headers,
            body=b"",
            audience=CB,
        )
    assert len(calls) == 2 and str(unknown.value) == str(wrong.value)
