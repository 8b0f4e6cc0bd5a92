"""Signed HTTP requests ("envelopes") between parties.

A request carries four headers:

    CBDC-Key-Id     who signs: "admin", "operator:<code>", "wallet:<wallet id>", "regulator"
    CBDC-Timestamp  unix seconds; refused outside +/- `MAX_SKEW_SECONDS`
    CBDC-Nonce      random, unique per key; a repeat is refused as a replay
    CBDC-Signature  Ed25519 over "METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nSHA256(BODY)"

Servers check the signature against the key registered for the key id, the timestamp window,
and record the nonce (see `cbdc.auth`). The central bank signs its responses the same way
(`CBDC-Response-Signature` over "STATUS\\nREQUEST-NONCE\\nSHA256(BODY)"), so an operator can prove
what the central bank answered.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cbdc.crypto import SigningKey, b64e, sha256_hex, verify
from cbdc.errors import BadSignature, Unauthenticated

MAX_SKEW_SECONDS = 300
H_KEY, H_TS, H_NONCE, H_SIG = "CBDC-Key-Id", "CBDC-Timestamp", "CBDC-Nonce", "CBDC-Signature"
H_RESPONSE_SIG = "CBDC-Response-Signature"


def signing_string(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{method.upper()}\n{target}\n{timestamp}\n{nonce}\n{sha256_hex(body)}".encode()


def sign_request(
    key: SigningKey, key_id: str, method: str, target: str, body: bytes = b""
) -> dict[str, str]:
    """Headers that authenticate one request. `target` is the path plus '?query' if any."""
    timestamp = str(int(time.time()))
    nonce = b64e(secrets.token_bytes(16))
    signature = key.sign(signing_string(method, target, timestamp, nonce, body))
    return {H_KEY: key_id, H_TS: timestamp, H_NONCE: nonce, H_SIG: signature}


@dataclass(frozen=True)
class VerifiedRequest:
    key_id: str
    nonce: str
    timestamp: int


def read_envelope(headers: Mapping[str, str]) -> tuple[str, str, str, str]:
    try:
        return headers[H_KEY], headers[H_TS], headers[H_NONCE], headers[H_SIG]
    except KeyError as missing:
        raise Unauthenticated(f"missing header {missing.args[0]}") from None


def verify_request(
    *,
    public_key: str,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
) -> VerifiedRequest:
    key_id, ts, nonce, signature = read_envelope(headers)
    try:
        timestamp = int(ts)
    except ValueError:
        raise Unauthenticated("CBDC-Timestamp must be unix seconds") from None
    if abs((now or time.time()) - timestamp) > MAX_SKEW_SECONDS:
        raise Unauthenticated("request timestamp outside the allowed window")
    if not 8 <= len(nonce) <= 64:
        raise Unauthenticated("CBDC-Nonce must be 8 to 64 characters")
    if not verify(public_key, signing_string(method, target, ts, nonce, body), signature):
        raise BadSignature("request signature does not verify")
    return VerifiedRequest(key_id=key_id, nonce=nonce, timestamp=timestamp)


def response_signing_string(status: int, request_nonce: str, body: bytes) -> bytes:
    return f"{status}\n{request_nonce}\n{sha256_hex(body)}".encode()


def verify_response(
    public_key: str, status: int, request_nonce: str, body: bytes, signature: str
) -> bool:
    return verify(public_key, response_signing_string(status, request_nonce, body), signature)
