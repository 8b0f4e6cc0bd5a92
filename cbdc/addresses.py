"""Wallet ids that carry their operator's routing code, like an IBAN.

    BKA1 00000000004711 42
    ^^^^ operator routing code (4 of A-Z0-9)
         ^^^^^^^^^^^^^^ account number at that operator (14 digits)
                        ^^ ISO 7064 MOD 97-10 check digits over code + number

Any payer can route to any payee from the id alone (no directory lookup), and a mistyped id is
caught by the check digits before any money moves.
"""

from __future__ import annotations

import functools
import re

WALLET_ID = re.compile(r"^[A-Z0-9]{4}[0-9]{16}$")


def _numeric(text: str) -> int:
    return int("".join(str(int(ch, 36)) for ch in text))


def check_digits(code: str, number: str) -> str:
    return f"{98 - (_numeric(code + number) * 100) % 97:02d}"


def make_wallet_id(code: str, sequence: int) -> str:
    number = f"{sequence:014d}"
    return f"{code}{number}{check_digits(code, number)}"


def is_valid_wallet_id(wallet_id: str) -> bool:
    """Format and ISO 7064 check digits (pure, so cached: the batch path asks per payment)."""
    return isinstance(wallet_id, str) and _valid_wallet_id(wallet_id)


@functools.lru_cache(maxsize=1 << 18)
def _valid_wallet_id(wallet_id: str) -> bool:
    if not WALLET_ID.match(wallet_id):
        return False
    code, number, digits = wallet_id[:4], wallet_id[4:18], wallet_id[18:]
    return check_digits(code, number) == digits


def routing_code(wallet_id: str) -> str:
    return wallet_id[:4]
