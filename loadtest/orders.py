"""Signed payment orders as the load generator builds them, and the two fields it reads back.

A payment's body is built as text (`payment_body`): the order's canonical JSON (keys sorted, no
spaces: what `cbdc.crypto.canonical_json` gives and what the operator verifies) written from a
template and signed as it is, then wrapped with its signature. It is byte for byte what
`wallets.orders.sign_order` and `json.dumps` give, with a fresh random nonce and the current
time in every order, signed when it is sent: 38 µs per order here, of which the Ed25519
signature is 32, against 47 µs building dicts and serialising them twice
(tests/test_loadtest_orders.py holds the two equal). Answers are read
by a byte search for the one field needed (`receipt_status`, `problem_code`), not parsed whole.

No Locust or gevent here: `cbdc bench`'s batch phase uses it too.
"""

from __future__ import annotations

import json
import re
import secrets
from base64 import urlsafe_b64encode
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# Text that JSON writes as it is (no escapes): what the order template may hold as strings.
PLAIN = re.compile(r"[A-Za-z0-9_.:+-]+")
# The first "status" of a receipt is its own (the signed document inside repeats it); a
# problem+json's "status" is a number, its "code" a string.
_STATUS = re.compile(rb'"status"\s*:\s*"([A-Za-z_]+)"')
_CODE = re.compile(rb'"code"\s*:\s*"([A-Za-z0-9_]+)"')


def payment_body(
    key: Ed25519PrivateKey,
    *,
    payer: str,
    payee: str,
    amount: int,
    currency: str,
    nonce: str | None = None,
    created_at: str | None = None,
) -> bytes:
    """A request body for POST /v1/payments: the wallets' own order (`wallets.orders`), signed
    over its canonical JSON with the payer's key. A fresh nonce and the current time unless
    given. `payer`, `payee` and `currency` must be `PLAIN` (the manifest's are checked)."""
    nonce = nonce or secrets.token_hex(16)
    created_at = created_at or datetime.now(UTC).isoformat()
    order = (
        f'{{"amount":{int(amount)},"created_at":"{created_at}","currency":"{currency}",'
        f'"nonce":"{nonce}","payee":"{payee}","payer":"{payer}","type":"payment"}}'
    ).encode()
    signature = urlsafe_b64encode(key.sign(order))[:-2]  # 64 bytes: 88 characters, "==" cut
    return b'{"order":' + order + b',"signature":"' + signature + b'"}'


def _field(body: bytes, pattern: re.Pattern[bytes], name: str) -> str:
    """A top-level string field of a JSON answer, found without parsing the whole body (parsed
    when the search finds nothing)."""
    found = pattern.search(body)
    if found:
        return found.group(1).decode()
    try:
        value: Any = json.loads(body)
        return str(value.get(name, "unknown"))
    except (ValueError, AttributeError):
        return "unreadable"


def receipt_status(body: bytes) -> str:
    """A payment receipt's status (`completed`, `delivered`, `pending_settlement`, ...)."""
    return _field(body, _STATUS, "status")


def problem_code(body: bytes) -> str:
    """A problem+json answer's stable code."""
    return _field(body, _CODE, "code")
