"""Signed HTTP requests ("envelopes") between parties, version 2.

A request carries six headers, and the Idempotency-Key header (if any) is signed with them:

    CBDC-Version    "2"; any other value (or none: the version-1 format) is refused
    CBDC-Audience   the service the request is for: "central-bank" or "operator:<code>"
    CBDC-Key-Id     who signs: "admin", "operator:<code>", "wallet:<wallet id>", "regulator"
    CBDC-Timestamp  unix seconds, 1 to 12 ASCII digits; refused outside +/- `MAX_SKEW_SECONDS`
    CBDC-Nonce      random, unique per key; a repeat is refused as a replay
    CBDC-Signature  Ed25519 over the request's signing string:

        CBDC-REQUEST/2\\nAUDIENCE\\nMETHOD\\nPATH?QUERY\\nKEY-ID\\nTIMESTAMP\\nNONCE
        \\nIDEMPOTENCY-KEY\\nSHA256(BODY)

    IDEMPOTENCY-KEY is the request's Idempotency-Key header, the empty string when it has none:
    a key stripped, added or swapped in transit breaks the signature.

Servers refuse a request for another audience (so a request signed for one operator cannot be
replayed at another), then check the timestamp window, the signature against the key registered
for the key id, and record the nonce (see `cbdc.web.auth`). An unknown key id and a signature that
does not verify get one and the same answer, so the answer does not tell which ids exist; an
unknown key id is checked against a dummy key, so both cost one Ed25519 verification.

The central bank signs its answers to authenticated requests (`CBDC-Response-Signature`) over a
string that repeats the request it answers, so a signed answer cannot be moved to another request:

    CBDC-RESPONSE/2\\nAUDIENCE\\nMETHOD\\nPATH?QUERY\\nKEY-ID\\nNONCE\\nIDEMPOTENCY-KEY
    \\nSHA256(REQUEST BODY)\\nSTATUS\\nSHA256(RESPONSE BODY)

It signs an answer only when this very request consumed its nonce (`cbdc.web.app.sign_responses`):
nothing for a request that failed authentication, and nothing for a resend of a request whose
nonce was already used, whatever the resend's answer (a 422 for a stripped header included).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cbdc.crypto import SigningKey, b64e, sha256_hex, verify
from cbdc.errors import BadSignature, Unauthenticated

ENVELOPE_VERSION = "2"
MAX_SKEW_SECONDS = 300
H_VERSION, H_AUDIENCE = "CBDC-Version", "CBDC-Audience"
H_KEY, H_TS, H_NONCE, H_SIG = "CBDC-Key-Id", "CBDC-Timestamp", "CBDC-Nonce", "CBDC-Signature"
H_RESPONSE_SIG = "CBDC-Response-Signature"
H_IDEMPOTENCY = "Idempotency-Key"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# Checked instead of a registered key when the key id is unknown, so that an unknown key id
# costs the same Ed25519 verification as a known one with a bad signature.
_DUMMY_PUBLIC_KEY = SigningKey.generate().public_key

CENTRAL_BANK_AUDIENCE = "central-bank"
# The one answer to an unknown key id and to a signature that does not verify.
BAD_SIGNATURE_DETAIL = "request signature does not verify"


def operator_audience(code: str) -> str:
    return f"operator:{code}"


class EnvelopeVersionUnsupported(Unauthenticated):
    code = "envelope_version_unsupported"
    title = "Envelope version is not supported"


class WrongAudience(Unauthenticated):
    code = "wrong_audience"
    title = "Request is meant for another service"


@dataclass(frozen=True)
class RequestBinding:
    """What identifies one signed request: its signed fields, the body as its digest.
    The server's response signature repeats these, so the client can check that an answer
    belongs to the request it sent."""

    audience: str
    method: str  # upper case
    target: str  # path plus "?query" if any
    key_id: str
    nonce: str
    idempotency_key: str  # "" when the request had no Idempotency-Key header
    body_sha256: str


def signing_string(
    *,
    audience: str,
    method: str,
    target: str,
    key_id: str,
    timestamp: str,
    nonce: str,
    idempotency_key: str,
    body_sha256: str,
) -> bytes:
    return (
        f"CBDC-REQUEST/{ENVELOPE_VERSION}\n{audience}\n{method.upper()}\n{target}\n{key_id}\n"
        f"{timestamp}\n{nonce}\n{idempotency_key}\n{body_sha256}"
    ).encode()


def sign_request(
    key: SigningKey,
    key_id: str,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    audience: str,
    idempotency_key: str | None = None,
) -> dict[str, str]:
    """Headers that authenticate one request for `audience`. `target` is the path plus '?query'
    if any. `idempotency_key` is signed too and comes back among the headers."""
    timestamp = str(int(time.time()))
    nonce = b64e(secrets.token_bytes(16))
    signature = key.sign(
        signing_string(
            audience=audience,
            method=method,
            target=target,
            key_id=key_id,
            timestamp=timestamp,
            nonce=nonce,
            idempotency_key=idempotency_key or "",
            body_sha256=sha256_hex(body),
        )
    )
    headers = {
        H_VERSION: ENVELOPE_VERSION,
        H_AUDIENCE: audience,
        H_KEY: key_id,
        H_TS: timestamp,
        H_NONCE: nonce,
        H_SIG: signature,
    }
    if idempotency_key:
        headers[H_IDEMPOTENCY] = idempotency_key
    return headers


@dataclass(frozen=True)
class Envelope:
    """An envelope's headers, checked for everything but the signature itself."""

    key_id: str
    audience: str
    timestamp: int
    nonce: str
    signature: str
    raw_timestamp: str
    idempotency_key: str = ""


def read_envelope(
    headers: Mapping[str, str], *, audience: str, now: float | None = None
) -> Envelope:
    """The envelope of a request to the service `audience`: version, audience, timestamp window
    and nonce checked (cheap, no key needed). Raises `Unauthenticated` (or a subclass)."""
    version = headers.get(H_VERSION)
    if version != ENVELOPE_VERSION:
        raise EnvelopeVersionUnsupported(
            f"this service accepts signed requests of envelope version {ENVELOPE_VERSION} "
            f"only ({H_VERSION}: {ENVELOPE_VERSION}, with {H_AUDIENCE} in the signed text); "
            f"got {'no ' + H_VERSION + ' header' if version is None else repr(version[:16])}"
        )
    try:
        key_id, claimed, ts = headers[H_KEY], headers[H_AUDIENCE], headers[H_TS]
        nonce, signature = headers[H_NONCE], headers[H_SIG]
    except KeyError as missing:
        raise Unauthenticated(f"missing header {missing.args[0]}") from None
    if claimed != audience:
        raise WrongAudience(f"this request is for {claimed[:64]!r}; this service is {audience!r}")
    if not _TIMESTAMP.fullmatch(ts):
        raise Unauthenticated("CBDC-Timestamp must be unix seconds (1 to 12 ASCII digits)")
    timestamp = int(ts)
    if abs((now or time.time()) - timestamp) > MAX_SKEW_SECONDS:
        raise Unauthenticated("request timestamp outside the allowed window")
    if not 8 <= len(nonce) <= 64:
        raise Unauthenticated("CBDC-Nonce must be 8 to 64 characters")
    idempotency_key = headers.get(H_IDEMPOTENCY, "")
    return Envelope(key_id, claimed, timestamp, nonce, signature, ts, idempotency_key)


def verify_envelope(
    envelope: Envelope,
    *,
    public_key: str | None,
    method: str,
    target: str,
    body: bytes,
) -> RequestBinding:
    """Checks the signature with the key registered for the key id (None: no such key id, which
    is answered exactly like a bad signature, after the same work: a verification against a
    dummy key). Returns what a response must be bound to."""
    binding = RequestBinding(
        audience=envelope.audience,
        method=method.upper(),
        target=target,
        key_id=envelope.key_id,
        nonce=envelope.nonce,
        idempotency_key=envelope.idempotency_key,
        body_sha256=sha256_hex(body),
    )
    message = signing_string(
        audience=binding.audience,
        method=binding.method,
        target=target,
        key_id=binding.key_id,
        timestamp=envelope.raw_timestamp,
        nonce=binding.nonce,
        idempotency_key=binding.idempotency_key,
        body_sha256=binding.body_sha256,
    )
    verified = verify(public_key or _DUMMY_PUBLIC_KEY, message, envelope.signature)
    if public_key is None or not verified:
        raise BadSignature(BAD_SIGNATURE_DETAIL)
    return binding


def verify_request(
    *,
    public_key: str | None,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    audience: str,
    now: float | None = None,
) -> RequestBinding:
    """`read_envelope` and `verify_envelope` in one call."""
    envelope = read_envelope(headers, audience=audience, now=now)
    return verify_envelope(envelope, public_key=public_key, method=method, target=target, body=body)


def response_signing_string(request: RequestBinding, status: int, body: bytes) -> bytes:
    return (
        f"CBDC-RESPONSE/{ENVELOPE_VERSION}\n{request.audience}\n{request.method}\n"
        f"{request.target}\n{request.key_id}\n{request.nonce}\n{request.idempotency_key}\n"
        f"{request.body_sha256}\n"
        f"{status}\n{sha256_hex(body)}"
    ).encode()


def verify_response(
    public_key: str, request: RequestBinding, status: int, body: bytes, signature: str
) -> bool:
    """Whether `signature` is the server's signature of this answer to this request."""
    return verify(public_key, response_signing_string(request, status, body), signature)
