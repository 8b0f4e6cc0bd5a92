"""Merchant categories: the fixed vocabulary every party validates against (docs/api.md).

A merchant's operator registers its wallet's category at the central bank's registry; a
programme (purpose-bound vouchers, operators/programmable) names the categories its vouchers may
be spent at. Anything outside this list is refused with 422 `bad_merchant_category`.
"""

from __future__ import annotations

from typing import Any

from cbdc.errors import DomainError

CATEGORIES = (
    "groceries",
    "restaurants",
    "transport",
    "pharmacy",
    "utilities",
    "retail",
    "general",
)


class BadMerchantCategory(DomainError):
    code = "bad_merchant_category"
    status = 422
    title = "Not a merchant category (see the fixed list)"


def check_category(value: Any, *, field: str = "category") -> str:
    """`value` if it is one of CATEGORIES, else BadMerchantCategory (422)."""
    if not isinstance(value, str) or value not in CATEGORIES:
        raise BadMerchantCategory(f"{field}: {value!r} is not one of {', '.join(CATEGORIES)}")
    return value


def check_categories(values: Any, *, field: str = "categories") -> list[str]:
    """A non-empty list of distinct categories, in the given order."""
    if not isinstance(values, list) or not values:
        raise BadMerchantCategory(f"{field}: a non-empty list of categories")
    checked = [check_category(v, field=field) for v in values]
    if len(set(checked)) != len(checked):
        raise BadMerchantCategory(f"{field}: each category at most once")
    return checked
