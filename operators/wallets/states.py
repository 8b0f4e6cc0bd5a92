"""Wallets read many at a time, for the set-based paths (batch payments, bulk exchange, net
settlement credits): their ledger accounts, to lock, and their state as of the lock, in raw
psycopg (`operators.rawsql`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc.sqlarrays import text_array
from operators.rawsql import raw


@dataclass(slots=True)
class WalletState:
    """What judging a payment needs of a wallet (duck-types `operators.models.Wallet`)."""

    id: str
    account_id: int
    wallet_class: int
    status: str
    customer_id: int
    deposit_account_id: int
    spent_day: date | None
    spent_day_total: int
    spent_year: int | None
    spent_year_total: int
    public_key: str | None = None


_STATE_COLUMNS = (
    "w.id, w.account_id, w.wallet_class, w.status, w.customer_id, c.deposit_account_id, "
    "w.spent_day, w.spent_day_total, w.spent_year, w.spent_year_total"
)


WALLET_STATE_SQL = (
    f"SELECT {_STATE_COLUMNS} FROM wallets w JOIN customers c ON c.id = w.customer_id "
    "WHERE w.id = ANY(%(ids)s::text[])"
)


WALLET_STATE_KEYS_SQL = (
    f"SELECT {_STATE_COLUMNS}, w.public_key FROM wallets w "
    "JOIN customers c ON c.id = w.customer_id WHERE w.id = ANY(%(ids)s::text[])"
)


def load_wallet_states(session: Session, wallet_ids: Sequence[str]) -> dict[str, WalletState]:
    if not wallet_ids:
        return {}
    with raw(session, WALLET_STATE_SQL) as conn, conn.cursor() as cursor:
        cursor.execute(WALLET_STATE_SQL, {"ids": text_array(list(wallet_ids))})
        return {r[0]: WalletState(*r) for r in cursor.fetchall()}


def wallet_accounts(
    session: Session, wallet_ids: Sequence[str], *, with_deposits: bool
) -> set[int]:
    """The ledger accounts of these wallets (and of their holders' deposits)."""
    if not wallet_ids:
        return set()
    if with_deposits:
        rows = session.execute(
            text(
                "SELECT w.account_id, c.deposit_account_id FROM wallets w JOIN customers c "
                "ON c.id = w.customer_id WHERE w.id = ANY(CAST(:ids AS text[]))"
            ),
            {"ids": text_array(list(wallet_ids))},
        )
        return {a for row in rows for a in row}
    return set(
        session.execute(
            text("SELECT account_id FROM wallets WHERE id = ANY(CAST(:ids AS text[]))"),
            {"ids": text_array(list(wallet_ids))},
        ).scalars()
    )
