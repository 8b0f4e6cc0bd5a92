"""Checks on identity evidence a customer presents when opening or upgrading a wallet.

These are the remote checks an operator can do by itself: well-formed phone number, a resident
ID number whose check digit is right (GB 11643-1999, ISO 7064 MOD 11-2), a bank card or account
number that passes the Luhn check. (A real operator would also query the ID authority and the
card's bank; the simulator stops at what can be verified offline.)
"""

from __future__ import annotations

import re

PHONE = re.compile(r"^\+?[0-9]{6,15}$")
RESIDENT_ID = re.compile(r"^[0-9]{17}[0-9X]$")
ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
ID_CHECK = "10X98765432"


def valid_phone(phone: str) -> bool:
    return bool(PHONE.match(phone))


def resident_id_check_digit(first17: str) -> str:
    return ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def valid_resident_id(id_number: str) -> bool:
    id_number = id_number.upper()
    return bool(RESIDENT_ID.match(id_number)) and (
        resident_id_check_digit(id_number[:17]) == id_number[17]
    )


def make_resident_id(first17: str) -> str:
    """A well-formed ID number for tests and demos (first 17 digits + the right check digit)."""
    return first17 + resident_id_check_digit(first17)


def valid_bank_account(number: str) -> bool:
    """Luhn check over 12-19 digits (bank cards and most account numbers)."""
    digits = number.replace(" ", "")
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def make_bank_account(prefix: str) -> str:
    """Append the Luhn check digit to `prefix` (for tests and demos)."""
    for check in "0123456789":
        if valid_bank_account(prefix + check):
            return prefix + check
    raise AssertionError("unreachable")
