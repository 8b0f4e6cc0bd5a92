"""The one coin: a digital currency token and the signed documents about it.

A token is `{"serial", "amount", "currency", "issued_at"}` signed by the central bank's Ed25519
key. Ownership is *not* in the token: the registration centre records it, which is what lets the
central bank refuse a second spend. Anyone holding the central bank's public key can check that a
token is genuine.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cbdc.crypto import SigningKey, verify_json


def token_body(serial: str, amount: int, currency: str, issued_at: datetime | str) -> dict:
    issued = issued_at.isoformat() if isinstance(issued_at, datetime) else issued_at
    return {"serial": serial, "amount": amount, "currency": currency, "issued_at": issued}


def sign_token(key: SigningKey, body: dict) -> dict:
    return {**body, "signature": key.sign_json(body)}


def verify_token(central_bank_public_key: str, token: dict[str, Any]) -> bool:
    body = {k: token[k] for k in ("serial", "amount", "currency", "issued_at") if k in token}
    return len(body) == 4 and verify_json(
        central_bank_public_key, body, str(token.get("signature", ""))
    )


def sign_document(key: SigningKey, document: dict) -> dict:
    """A signed document on the wire: {"document": {...}, "signature": "..."}."""
    return {"document": document, "signature": key.sign_json(document)}


def verify_document(public_key: str, signed: dict[str, Any]) -> bool:
    document, signature = signed.get("document"), signed.get("signature")
    return (
        isinstance(document, dict)
        and isinstance(signature, str)
        and verify_json(public_key, document, signature)
    )
