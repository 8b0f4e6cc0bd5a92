"""What the centres' service functions need besides a session: the central bank's key and
the currency's terms (built once by `state.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from cbdc.crypto import SigningKey


@dataclass(frozen=True)
class CentralBank:
    """What the service functions need besides a session."""

    key: SigningKey
    currency: str
    max_token_amount: int
