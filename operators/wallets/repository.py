"""SQL of customers, their wallets and their orders (payments, loads, unloads): an order belongs
to its wallet, and payments, exchange and settlement all read and update it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from cbdc.clock import iso
from cbdc.sqlarrays import text_array
from operators.models import Customer, Order, Wallet


def add_customer(session: Session, customer: Customer) -> Customer:
    session.add(customer)
    session.flush()
    return customer


def get_customer(session: Session, customer_id: int) -> Customer | None:
    return session.get(Customer, customer_id)


def add_wallet(session: Session, wallet: Wallet) -> Wallet:
    session.add(wallet)
    session.flush()
    return wallet


def get_wallet(session: Session, wallet_id: str, *, lock: bool = False) -> Wallet | None:
    """The wallet row; with `lock`, re-read from the database and locked FOR UPDATE (never a
    stale copy from this session's identity map)."""
    if lock:
        return session.get(Wallet, wallet_id, with_for_update=True, populate_existing=True)
    return session.get(Wallet, wallet_id)


def wallet_public_key(session: Session, wallet_id: str) -> str | None:
    return session.scalar(select(Wallet.public_key).where(Wallet.id == wallet_id))


def wallet_accounts(session: Session, wallet_ids: set[str]) -> dict[str, int]:
    rows = session.execute(
        select(Wallet.id, Wallet.account_id).where(Wallet.id.in_(wallet_ids))
    ).all()
    return {str(r.id): int(r.account_id) for r in rows}


def deposit_accounts_of(session: Session, wallet_ids: set[str]) -> list[int]:
    rows = session.execute(
        select(Customer.deposit_account_id)
        .join(Wallet, Wallet.customer_id == Customer.id)
        .where(Wallet.id.in_(wallet_ids))
    ).scalars()
    return [int(r) for r in rows]


def public_key_in_use(session: Session, public_key: str) -> bool:
    return bool(session.scalar(select(func.count()).where(Wallet.public_key == public_key)))


def update_spend_counters(
    session: Session, wallet_id: str, *, day: Any, day_total: int, year: int, year_total: int
) -> None:
    session.execute(
        update(Wallet)
        .where(Wallet.id == wallet_id)
        .values(
            spent_day=day, spent_day_total=day_total, spent_year=year, spent_year_total=year_total
        )
    )


def wallet_history(
    session: Session, *, account_id: int, wallet_id: str, limit: int, before: int | None
) -> list[dict[str, Any]]:
    rows = (
        session.execute(
            text(
                """
SELECT p.id AS posting_id, p.amount, j.kind, j.reference, j.created_at,
       o.kind AS order_kind, o.wallet_id AS order_wallet, o.counterparty, o.status AS order_status,
       o.body ->> 'memo' AS memo, i.payer_alias, i.payer_operator
FROM postings p
JOIN journal_entries j ON j.id = p.entry_id
LEFT JOIN orders o ON o.entry_id = j.id
LEFT JOIN inbound_settlements i ON i.entry_id = j.id
WHERE p.account_id = :acc AND (CAST(:before AS bigint) IS NULL OR p.id < :before)
ORDER BY p.id DESC
LIMIT :limit
"""
            ),
            {"acc": account_id, "before": before, "limit": limit},
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


def escrow_locked(session: Session, wallet_id: str) -> int:
    """What the wallet's open escrows still hold for their payees (operators/programmable):
    the wallet's `locked` value, next to its (available) balance."""
    return int(
        session.execute(
            text(
                "SELECT coalesce(sum(amount - released - refunded), 0) FROM escrows "
                "WHERE payer = :w AND status = 'open'"
            ),
            {"w": wallet_id},
        ).scalar_one()
    )


def voucher_holdings(session: Session, wallet_id: str) -> list[dict[str, Any]]:
    """The wallet's vouchers with something left, of programmes not expired
    (operators/programmable): the wallet view's `vouchers`, a read of their tables so the
    wallets area does not import programmable."""
    rows = session.execute(
        text(
            "SELECT p.id, p.name, p.expires_at, p.categories, a.balance FROM voucher_accounts v "
            "JOIN programmes p ON p.id = v.programme_id JOIN accounts a ON a.id = v.account_id "
            "WHERE v.holder = :w AND p.status = 'active' AND a.balance > 0 ORDER BY p.expires_at"
        ),
        {"w": wallet_id},
    ).mappings()
    return [
        {
            "programme": str(r["id"]),
            "name": r["name"],
            "balance": int(r["balance"]),
            "expires_at": iso(r["expires_at"]),
            "categories": list(r["categories"]),
        }
        for r in rows
    ]


def find_order(session: Session, wallet_id: str, nonce: str) -> Order | None:
    return session.scalars(
        select(Order).where(Order.wallet_id == wallet_id, Order.nonce == nonce)
    ).first()


def get_order(session: Session, order_id: uuid.UUID, *, lock: bool = False) -> Order | None:
    stmt = select(Order).where(Order.id == order_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def add_order(session: Session, order: Order) -> Order:
    session.add(order)
    session.flush()
    return order


def set_order_status(
    session: Session,
    order_id: uuid.UUID,
    status: str,
    *,
    now: datetime,
    failure: str | None = None,
) -> None:
    session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(status=status, failure=failure, updated_at=now)
    )


def customer_deposit_balance(session: Session, customer_id: int) -> int:
    return int(
        session.execute(
            text(
                "SELECT a.balance FROM customers c JOIN accounts a ON a.id = c.deposit_account_id "
                "WHERE c.id = :c"
            ),
            {"c": customer_id},
        ).scalar_one()
    )


def wallet_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Wallet)) or 0)


def wallet_balances(session: Session, wallet_ids: Sequence[str]) -> dict[str, int]:
    """The balance of each of these wallets (minor units), in wallet id order; unknown ids are
    left out."""
    rows = session.execute(
        text(
            "SELECT w.id, a.balance FROM wallets w JOIN accounts a ON a.id = w.account_id "
            "WHERE w.id = ANY(CAST(:ids AS text[])) ORDER BY w.id"
        ),
        {"ids": text_array(list(wallet_ids))},
    ).all()
    return {str(r.id): int(r.balance) for r in rows}


def holder_deposit_balances(session: Session, wallet_ids: Sequence[str]) -> dict[str, int]:
    """For each of these wallets, the balance of its holder's bank deposit (minor units), in
    wallet id order; unknown ids are left out."""
    rows = session.execute(
        text(
            "SELECT w.id, a.balance FROM wallets w JOIN customers c ON c.id = w.customer_id "
            "JOIN accounts a ON a.id = c.deposit_account_id "
            "WHERE w.id = ANY(CAST(:ids AS text[])) ORDER BY w.id"
        ),
        {"ids": text_array(list(wallet_ids))},
    ).all()
    return {str(r.id): int(r.balance) for r in rows}
