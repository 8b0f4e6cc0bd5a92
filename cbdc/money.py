"""Money is an integer number of minor units (fen for CNY). These helpers only format and parse
for people; nothing in the ledger ever sees a float."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def format_amount(minor: int, decimals: int = 2, currency: str = "") -> str:
    sign = "-" if minor < 0 else ""
    units, frac = divmod(abs(minor), 10**decimals)
    text = f"{sign}{units:,}" + (f".{frac:0{decimals}d}" if decimals else "")
    return f"{text} {currency}".strip()


def parse_amount(text: str, decimals: int = 2) -> int:
    """'12.34' -> 1234 (with 2 decimals). Refuses more precision than the currency has."""
    try:
        value = Decimal(text.replace(",", "").strip())
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    scaled = value * (10**decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{text!r} has more than {decimals} decimals")
    if scaled <= 0:
        raise ValueError("amount must be positive")
    return int(scaled)
