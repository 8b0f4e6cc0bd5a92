"""Wallet ids that carry their operator's routing code, like an IBAN.

    BKA1 38710926554011 42
    ^^^^ operator routing code (4 of A-Z0-9)
         ^^^^^^^^^^^^^^ wallet number at that operator (14 digits)
                        ^^ ISO 7064 MOD 97-10 check digits over code + number

Any payer can route to any payee from the id alone (no directory lookup), and a mistyped id is
caught by the check digits before any money moves.

The wallet number is not the operator's sequential account id: that would tell anyone holding
two ids how many wallets were opened between them, and let them guess their neighbours. It is a
keyed permutation of the account id over [0, 10^14) (`WalletNumbering`): a balanced Feistel
network on two halves of 7 decimal digits, each round adding a keyed BLAKE2b of the other half
modulo 10^7. Being a permutation, distinct accounts always get distinct numbers (no collision to
check, however many wallets are seeded); keyed by the operator's secret, the numbers are
deterministic for the operator and look random to everyone else.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re

WALLET_ID = re.compile(r"^[A-Z0-9]{4}[0-9]{16}$")


def _numeric(text: str) -> int:
    return int("".join(str(int(ch, 36)) for ch in text))


def check_digits(code: str, number: str) -> str:
    return f"{98 - (_numeric(code + number) * 100) % 97:02d}"


def make_wallet_id(code: str, number: int) -> str:
    """The id of wallet `number` (14 digits) at operator `code`. Operators number their wallets
    with `WalletNumbering`, never with their account ids."""
    digits = f"{number:014d}"
    return f"{code}{digits}{check_digits(code, digits)}"


_HALF = 10**7  # a wallet number is two halves of 7 digits: [0, 10^7)^2 is exactly [0, 10^14)
_ROUNDS = 8


class WalletNumbering:
    """The keyed permutation of account ids onto wallet numbers (see the module docstring)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a wallet numbering secret has at least 16 bytes")
        self._rounds = [
            hashlib.blake2b(
                key=hmac.digest(secret, b"wallet-number round %d" % i, "sha256"), digest_size=8
            )
            for i in range(_ROUNDS)
        ]

    def number(self, account: int) -> int:
        if not 0 <= account < _HALF * _HALF:
            raise ValueError(f"account id {account} outside [0, 10^14)")
        left, right = divmod(account, _HALF)
        for keyed in self._rounds:
            f = keyed.copy()
            f.update(right.to_bytes(4, "big"))
            left, right = right, (left + int.from_bytes(f.digest(), "big")) % _HALF
        return left * _HALF + right

    def wallet_id(self, code: str, account: int) -> str:
        return make_wallet_id(code, self.number(account))


@functools.lru_cache(maxsize=64)
def wallet_numbering(private_key: str) -> WalletNumbering:
    """The numbering of the operator whose Ed25519 private key (as `SigningKey.private_bytes()`)
    is given: its secret is derived from that key, so it needs no storage of its own and stays
    the operator's for as long as its key does."""
    return WalletNumbering(
        hmac.digest(private_key.encode(), b"cbdc wallet-number permutation v1", "sha256")
    )


def is_valid_wallet_id(wallet_id: str) -> bool:
    """Format and ISO 7064 check digits (pure, so cached: the batch path asks per payment)."""
    return isinstance(wallet_id, str) and _valid_wallet_id(wallet_id)


@functools.lru_cache(maxsize=1 << 18)
def _valid_wallet_id(wallet_id: str) -> bool:
    if not WALLET_ID.fullmatch(wallet_id):
        return False
    code, number, digits = wallet_id[:4], wallet_id[4:18], wallet_id[18:]
    return check_digits(code, number) == digits


def routing_code(wallet_id: str) -> str:
    return wallet_id[:4]
