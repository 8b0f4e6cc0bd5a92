"""Double-entry posting, shared by both databases (same `accounts`/`journal_entries`/`postings`
tables, see migrations/ledger_v1.py).

`post()` writes one journal entry whose legs must sum to zero, `post_many()` thousands of them
in two statements; the database applies each statement's legs to the accounts' balances and
refuses a negative balance on a non-contra account (raised here as `InsufficientFunds`) and an
unbalanced entry (migrations/ledger_v2.py). Callers lock the accounts they read
balances from with `lock_accounts()`, always in ascending id order, so concurrent transfers
cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cbdc.errors import InsufficientFunds
from cbdc.sqlarrays import int_array, nullable_text_array, text_array

Leg = tuple[int, int]  # (account id, signed amount in minor units)
Entry = tuple[str, str | None, Sequence[Leg]]  # (kind, reference, legs)


class UnbalancedEntry(ValueError):
    pass


def post(
    session: Session,
    *,
    kind: str,
    reference: str | None,
    legs: Sequence[Leg],
    at: datetime | None = None,
) -> int:
    """Write one balanced journal entry (stamped `at`, see `post_many`); return its id."""
    return post_many(session, [(kind, reference, legs)], at=at)[0]


def post_many(
    session: Session, entries: Sequence[Entry], *, at: datetime | None = None
) -> list[int]:
    """Write many balanced journal entries in two statements; return their ids, in order.

    Each entry's legs must sum to zero (checked here, and again by the database per statement).
    `at` stamps the entries (a simulated clock); by default the database's now()."""
    if not entries:
        return []
    kinds: list[str] = []
    references: list[str | None] = []
    counts: list[int] = []
    accounts: list[int] = []
    amounts: list[int] = []
    for kind, reference, legs in entries:
        n = 0
        total = 0
        for account, amount in legs:
            if amount:
                accounts.append(account)
                amounts.append(amount)
                total += amount
                n += 1
        if total != 0:
            raise UnbalancedEntry(f"{kind}: legs sum to {total}")
        if n == 0:
            raise UnbalancedEntry(f"{kind}: no legs")
        kinds.append(kind)
        references.append(reference)
        counts.append(n)
    # Ids drawn and entries written in one statement; the CTE is materialised (read twice), so
    # each row's nextval is evaluated once and the ids come back in the entries' order.
    ids = session.execute(
        text(
            "WITH e AS (SELECT nextval('journal_entries_id_seq') AS id, k.kind, k.reference, "
            "k.n FROM unnest(CAST(:kinds AS text[]), CAST(:refs AS text[])) "
            "WITH ORDINALITY AS k(kind, reference, n)), "
            "w AS (INSERT INTO journal_entries (id, kind, reference, created_at) "
            "SELECT e.id, e.kind, e.reference, coalesce(CAST(:at AS timestamptz), now()) "
            "FROM e) "
            "SELECT array_agg(id ORDER BY n) FROM e"
        ),
        {
            "kinds": text_array(kinds),
            "refs": nullable_text_array(references),
            "at": at,
        },
    ).scalar_one()
    entry_ids: list[int] = []
    for entry_id, n in zip(ids, counts, strict=True):
        entry_ids.extend([entry_id] * n)
    try:
        session.execute(
            text(
                "INSERT INTO postings (entry_id, account_id, amount) "
                "SELECT * FROM unnest(CAST(:e AS bigint[]), CAST(:a AS bigint[]), "
                "CAST(:m AS bigint[]))"
            ),
            {"e": int_array(entry_ids), "a": int_array(accounts), "m": int_array(amounts)},
        )
    except IntegrityError as exc:
        if "ck_accounts_non_negative" in str(exc.orig):
            raise InsufficientFunds("an account would go negative") from None
        raise
    return ids


def lock_accounts(session: Session, account_ids: Iterable[int]) -> dict[int, int]:
    """SELECT ... FOR UPDATE in ascending id order; return {id: balance}."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    # one row of two arrays: for the thousands of accounts of a batch, much cheaper to fetch
    # than a row per account
    locked, balances = session.execute(
        text(
            "WITH l AS (SELECT id, balance FROM accounts WHERE id = ANY(CAST(:ids AS bigint[])) "
            "ORDER BY id FOR UPDATE) SELECT array_agg(id), array_agg(balance) FROM l"
        ),
        {"ids": int_array(ids)},
    ).one()
    return dict(zip(locked or [], balances or [], strict=True))


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
