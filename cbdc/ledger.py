"""Double-entry posting, shared by both databases (same `accounts`/`journal_entries`/`postings`
tables, see migrations/ledger_v1.py).

`post()` writes one journal entry whose legs must sum to zero; the database applies each leg to
its account's balance and refuses a negative balance on a non-contra account (raised here as
`InsufficientFunds`) and an unbalanced entry (at COMMIT). Callers lock the accounts they read
balances from with `lock_accounts()`, always in ascending id order, so concurrent transfers
cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cbdc.errors import InsufficientFunds

Leg = tuple[int, int]  # (account id, signed amount in minor units)


class UnbalancedEntry(ValueError):
    pass


def post(session: Session, *, kind: str, reference: str | None, legs: Sequence[Leg]) -> int:
    """Write one balanced journal entry; return its id."""
    legs = [(account, amount) for account, amount in legs if amount != 0]
    if sum(amount for _, amount in legs) != 0:
        raise UnbalancedEntry(f"{kind}: legs sum to {sum(a for _, a in legs)}")
    if not legs:
        raise UnbalancedEntry(f"{kind}: no legs")
    entry_id = int(
        session.execute(
            text("INSERT INTO journal_entries (kind, reference) VALUES (:k, :r) RETURNING id"),
            {"k": kind, "r": reference},
        ).scalar_one()
    )
    # Debits (negative legs) first: a refused debit fails before any credit is written.
    ordered = sorted(legs, key=lambda leg: (leg[1] > 0, leg[0]))
    try:
        session.execute(
            text("INSERT INTO postings (entry_id, account_id, amount) VALUES (:e, :a, :m)"),
            [{"e": entry_id, "a": account, "m": amount} for account, amount in ordered],
        )
    except IntegrityError as exc:
        if "ck_accounts_non_negative" in str(exc.orig):
            raise InsufficientFunds("an account would go negative") from None
        raise
    return entry_id


def lock_accounts(session: Session, account_ids: Iterable[int]) -> dict[int, int]:
    """SELECT ... FOR UPDATE in ascending id order; return {id: balance}."""
    ids = sorted(set(account_ids))
    rows = session.execute(
        text("SELECT id, balance FROM accounts WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"),
        {"ids": ids},
    ).all()
    return {int(r.id): int(r.balance) for r in rows}


def account_id(session: Session, code: str) -> int | None:
    value = session.execute(text("SELECT id FROM accounts WHERE code = :c"), {"c": code}).scalar()
    return int(value) if value is not None else None


def ensure_account(
    session: Session, *, code: str, kind: str, allow_negative: bool = False, **extra: object
) -> int:
    columns = ["code", "kind", "allow_negative", *extra]
    params = {"code": code, "kind": kind, "allow_negative": allow_negative, **extra}
    placeholders = ", ".join(f":{c}" for c in columns)
    value = session.execute(
        text(
            f"INSERT INTO accounts ({', '.join(columns)}) VALUES ({placeholders}) "
            "ON CONFLICT (code) DO NOTHING RETURNING id"
        ),
        params,
    ).scalar()
    if value is not None:
        return int(value)
    existing = account_id(session, code)
    assert existing is not None
    return existing


def balances_by_kind(session: Session) -> dict[str, int]:
    rows = session.execute(
        text("SELECT kind, coalesce(sum(balance), 0) AS total FROM accounts GROUP BY kind")
    ).all()
    return {str(r.kind): int(r.total) for r in rows}


def ledger_integrity(session: Session) -> dict[str, int]:
    """Counts of violations: entries that don't sum to zero; balances that differ from postings."""
    unbalanced = session.execute(
        text(
            "SELECT count(*) FROM (SELECT entry_id FROM postings GROUP BY entry_id "
            "HAVING sum(amount) <> 0) x"
        )
    ).scalar_one()
    drifted = session.execute(
        text(
            "SELECT count(*) FROM accounts a LEFT JOIN (SELECT account_id, sum(amount) s "
            "FROM postings GROUP BY account_id) p ON p.account_id = a.id "
            "WHERE a.balance <> coalesce(p.s, 0)"
        )
    ).scalar_one()
    negative = session.execute(
        text("SELECT count(*) FROM accounts WHERE NOT allow_negative AND balance < 0")
    ).scalar_one()
    total = session.execute(text("SELECT coalesce(sum(balance), 0) FROM accounts")).scalar_one()
    return {
        "unbalanced_entries": int(unbalanced),
        "balance_drift_accounts": int(drifted),
        "negative_balances": int(negative),
        "sum_of_all_balances": int(total),
    }
