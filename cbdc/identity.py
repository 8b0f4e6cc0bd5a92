"""Checks on identity evidence a customer presents when opening or upgrading a wallet.

These are the remote checks an operator can do by itself: well-formed phone number, a resident
ID number whose check digit is right (GB 11643-1999, ISO 7064 MOD 11-2), a bank card or account
number that passes the Luhn check. (A real operator would also query the ID authority and the
card's bank; the simulator stops at what can be verified offline.)

Every check matches the whole string (`fullmatch`: `$` would let a trailing newline through)
and accepts ASCII digits only (`str.isdigit` and `\\d` also accept e.g. Arabic-Indic digits,
which `int()` then converts). `normalise` gives the one spelling of each kind of evidence that
uniqueness checks compare (operators/wallets/identity.py: blind index).

Phone numbers have one canonical form, E.164 (`+` country code and number). Two spellings are
accepted: the international `+<country code><number>` (for +86 the national part must be a
Chinese mobile number: class IV is opened on a mobile) and a national Chinese mobile number
`1[3-9]` + 9 digits, taken as +86. Nothing else (a `00` prefix, leading or trunk zeros, spaces)
is guessed at: one number, one spelling per form, so the class IV limit per phone counts people.
"""

from __future__ import annotations

import re
import unicodedata

PHONE_E164 = re.compile(r"\+[1-9][0-9]{6,14}")  # `+`, then 7-15 digits, the first not 0
CN_MOBILE = re.compile(r"1[3-9][0-9]{9}")  # national Chinese mobile number
PHONE_FORMS = (
    "a phone number is accepted as +<country code><number> (E.164: + then 7-15 digits; "
    "+86 then a mobile number 1[3-9] and 9 digits) or as a Chinese mobile number "
    "1[3-9] and 9 digits (taken as +86); no spaces, no 00 or 0 prefix"
)
LEGACY_PHONE = re.compile(r"\+?[0-9]{6,15}")  # what was accepted before E.164 (stored spellings)
RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]")
BANK_ACCOUNT = re.compile(r"[0-9]{12,19}")
ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
ID_CHECK = "10X98765432"


def canonical_phone(phone: str) -> str | None:
    """The E.164 form of a phone number in one of the two accepted spellings, else None."""
    if CN_MOBILE.fullmatch(phone):
        return "+86" + phone
    if PHONE_E164.fullmatch(phone) is None:
        return None
    if phone.startswith("+86") and CN_MOBILE.fullmatch(phone[3:]) is None:
        return None
    return phone


def valid_phone(phone: str) -> bool:
    return canonical_phone(phone) is not None


def legacy_phone(phone: str) -> str:
    """E.164 for a phone stored before the canonical form (old rule: optional `+`, 6-15 digits),
    read the way the lenient rule let one number be spelt: a `+` or `00` prefix, leading zeros,
    a `86` country code in front of a Chinese mobile number. Used only on stored identities (the
    blind index of wallets opened before, and comparisons with them), never to accept input."""
    if LEGACY_PHONE.fullmatch(phone) is None:
        raise ValueError("not a phone number as stored before")
    digits = phone.removeprefix("+").lstrip("0")
    return ("+86" if CN_MOBILE.fullmatch(digits) else "+") + digits


# Characters refused in any customer field: controls (Cc: NUL, newline, tab...), format
# characters (Cf: zero-width space and joiners, bidi embeddings, overrides and isolates, BOM),
# line and paragraph separators, surrogates, private use and unassigned code points. A name
# must look the same to the clerk, the regulator and the uniqueness check.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def printable_text(value: str) -> bool:
    """No control, format (zero-width, bidi), separator or unassigned character; ordinary
    spaces are fine."""
    return not any(unicodedata.category(ch) in REFUSED_CATEGORIES for ch in value)


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
    """The canonical spelling of a piece of evidence: phones in E.164 (a spelling stored before
    E.164 read as `legacy_phone` does), ID numbers in upper case, account numbers without
    spaces, names case-folded with single spaces."""
    if kind == "phone":
        return canonical_phone(value) or legacy_phone(value)
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
