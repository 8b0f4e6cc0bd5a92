"""Checks on identity evidence a customer presents when opening or upgrading a wallet.

These are the remote checks an operator can do by itself: well-formed phone number, a resident
ID number whose check digit is right (GB 11643-1999, ISO 7064 MOD 11-2), a bank card or account
number that passes the Luhn check. (A real operator would also query the ID authority and the
card's bank; the simulator stops at what can be verified offline.)

Every check matches the whole string (`fullmatch`: `$` would let a trailing newline through)
and accepts ASCII digits only (`str.isdigit` and `\\d` also accept e.g. Arabic-Indic digits,
which `int()` then converts). `normalise` gives the one spelling of each kind of evidence that
uniqueness checks compare (operators/identity.py: blind index).
"""

from __future__ import annotations

import re
import unicodedata

PHONE = re.compile(r"\+?[0-9]{6,15}")
RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]")
BANK_ACCOUNT = re.compile(r"[0-9]{12,19}")
ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
ID_CHECK = "10X98765432"


def valid_phone(phone: str) -> bool:
    return PHONE.fullmatch(phone) is not None


def resident_id_check_digit(first17: str) -> str:
    return ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def valid_resident_id(id_number: str) -> bool:
    id_number = id_number.upper()
    return RESIDENT_ID.fullmatch(id_number) is not None and (
        resident_id_check_digit(id_number[:17]) == id_number[17]
    )


def make_resident_id(first17: str) -> str:
    """A well-formed ID number for tests and demos (first 17 digits + the right check digit)."""
    return first17 + resident_id_check_digit(first17)


def valid_bank_account(number: str) -> bool:
    """Luhn check over 12-19 digits (bank cards and most account numbers)."""
    digits = number.replace(" ", "")
    if BANK_ACCOUNT.fullmatch(digits) is None:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def normalise(kind: str, value: str) -> str:
    """The canonical spelling of a piece of evidence: phones without a leading `+`, ID numbers
    in upper case, account numbers without spaces, names case-folded with single spaces."""
    if kind == "phone":
        return value.strip().removeprefix("+")
    if kind == "id_number":
        return value.strip().upper()
    if kind == "bank_account":
        return value.replace(" ", "")
    if kind in ("name", "display_name"):
        return " ".join(unicodedata.normalize("NFKC", value).casefold().split())
    raise ValueError(f"no normal form for evidence kind {kind!r}")


def make_bank_account(prefix: str) -> str:
    """Append the Luhn check digit to `prefix` (for tests, demos and simulated customers)."""
    total = 0
    for i, ch in enumerate(reversed(prefix)):
        d = int(ch)
        if i % 2 == 0:  # doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return prefix + str(-total % 10)
