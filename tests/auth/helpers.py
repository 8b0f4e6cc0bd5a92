"""Helpers for the authentication tests: signed, stale and version 1 request headers."""

from __future__ import annotations

import time
import uuid

from cbdc.crypto import SigningKey, sha256_hex
from cbdc.envelope import (
    CENTRAL_BANK_AUDIENCE,
    H_AUDIENCE,
    H_KEY,
    H_NONCE,
    H_SIG,
    H_TS,
    H_VERSION,
    operator_audience,
    sign_request,
    signing_string,
)

JSON = {"content-type": "application/json"}


CB = CENTRAL_BANK_AUDIENCE


AT_A, AT_B = operator_audience("BKA1"), operator_audience("BKB1")


def signed_headers(
    key: SigningKey,
    key_id: str,
    method: str,
    target: str,
    body: bytes = b"",
    audience: str = CB,
    **extra: str,
) -> dict[str, str]:
    # an Idempotency-Key among the extra headers is signed with the rest, as the clients do
    idempotency_key = extra.get("Idempotency-Key")
    return {
        **sign_request(
            key, key_id, method, target, body, audience=audience, idempotency_key=idempotency_key
        ),
        **extra,
    }


def stale_headers(
    key: SigningKey,
    key_id: str,
    method: str,
    target: str,
    body: bytes,
    age: int,
    audience: str = CB,
) -> dict[str, str]:
    ts = str(int(time.time()) - age)
    nonce = uuid.uuid4().hex
    sig = key.sign(
        signing_string(
            audience=audience,
            method=method,
            target=target,
            key_id=key_id,
            timestamp=ts,
            nonce=nonce,
            idempotency_key="",
            body_sha256=sha256_hex(body),
        )
    )
    return {
        H_VERSION: "2",
        H_AUDIENCE: audience,
        H_KEY: key_id,
        H_TS: ts,
        H_NONCE: nonce,
        H_SIG: sig,
    }
