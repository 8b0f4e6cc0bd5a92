"""What the centres' service functions need besides a session: the central bank's key and
the currency's terms (built once by `state.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from cbdc.crypto import SigningKey
from cbdc.money import format_amount


@dataclass(frozen=True)
class CentralBank:
    """What the service functions need besides a session."""

    key: SigningKey
    currency: str
    max_token_amount: int
    decimals: int = 2  # of the currency: problem details show amounts in major units

    def money(self, minor: int) -> str:
        """`minor` for people, e.g. "1,500.00 CNY" (problem details; machine fields stay
        minor units)."""
        return format_amount(minor, self.decimals, self.currency)
