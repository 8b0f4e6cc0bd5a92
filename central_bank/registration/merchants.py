"""The merchant category registry (issue #17): which category a merchant wallet sells in, so
the operator of a voucher holder can check where a purpose-bound voucher may be spent.

Only the operator holding the wallet (its routing code is the wallet id's first four
characters) may set or remove a wallet's category; any signed caller may read it. The category
is one of `cbdc.merchants.CATEGORIES`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.clock import iso
from cbdc.errors import Forbidden, NotFound, ValidationFailed
from cbdc.merchants import check_category


class MerchantUnknown(NotFound):
    code = "merchant_unknown"
    title = "No merchant category is registered for this wallet"


class NotWalletOperator(Forbidden):
    code = "not_wallet_operator"
    title = "Only the operator holding the wallet may register its merchant category"


def _check_wallet(wallet_id: str) -> None:
    if not is_valid_wallet_id(wallet_id):
        raise ValidationFailed(f"{wallet_id!r} is not a valid wallet id")


def set_category(
    session: Session, *, operator: str, wallet_id: str, category: str | None, now: datetime
) -> dict[str, Any]:
    """Register (or with None remove) the wallet's category; the registry entry."""
    _check_wallet(wallet_id)
    if routing_code(wallet_id) != operator:
        raise NotWalletOperator(
            f"wallet {wallet_id} is held at operator {routing_code(wallet_id)}, not {operator}"
        )
    if category is None:
        session.execute(
            text("DELETE FROM merchant_categories WHERE wallet_id = :w"), {"w": wallet_id}
        )
        return {
            "wallet_id": wallet_id,
            "category": None,
            "operator": operator,
            "updated_at": iso(now),
        }
    session.execute(
        text(
            "INSERT INTO merchant_categories (wallet_id, category, operator, updated_at) "
            "VALUES (:w, :c, :o, :t) ON CONFLICT (wallet_id) DO UPDATE SET "
            "category = EXCLUDED.category, updated_at = EXCLUDED.updated_at"
        ),
        {"w": wallet_id, "c": check_category(category), "o": operator, "t": now},
    )
    return get_category(session, wallet_id)


def get_category(session: Session, wallet_id: str) -> dict[str, Any]:
    _check_wallet(wallet_id)
    row = (
        session.execute(
            text(
                "SELECT wallet_id, category, operator, updated_at FROM merchant_categories "
                "WHERE wallet_id = :w"
            ),
            {"w": wallet_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise MerchantUnknown(f"wallet {wallet_id} has no registered merchant category")
    return {**dict(row), "updated_at": iso(row["updated_at"])}
