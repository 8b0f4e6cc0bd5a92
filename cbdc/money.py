"""Money is an integer number of minor units (fen for CNY). These helpers only format and parse
for people; nothing in the ledger ever sees a float."""

from __future__ import annotations

import re
from decimal import Decimal

# Digits, or digits in groups of three separated by commas; then an optional fraction.
_AMOUNT = re.compile(r"(?:[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+)(?:\.[0-9]*)?", re.ASCII)


def format_amount(minor: int, decimals: int = 2, currency: str = "") -> str:
    sign = "-" if minor < 0 else ""
    units, frac = divmod(abs(minor), 10**decimals)
    text = f"{sign}{units:,}" + (f".{frac:0{decimals}d}" if decimals else "")
    return f"{text} {currency}".strip()


def parse_amount(text: str, decimals: int = 2) -> int:
    """'12.34' -> 1234 (with 2 decimals). Refuses more precision than the currency has, and
    anything but plain ASCII digits with an optional point: commas only as thousands groups
    ("1,000.50"; "12,34" is refused, never read as 1234), no sign, exponent, NaN or Infinity."""
    clean = text.strip()
    if _AMOUNT.fullmatch(clean) is None:
        raise ValueError(f"not an amount: {text!r} (write it like 1234.56 or 1,234.56)")
    value = Decimal(clean.replace(",", ""))
    scaled = value * (10**decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{text!r} has more than {decimals} decimals")
    if scaled <= 0:
        raise ValueError("amount must be positive")
    return int(scaled)
