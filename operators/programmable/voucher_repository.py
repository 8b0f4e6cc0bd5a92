"""SQL of programmes and vouchers (tables `programmes`, `voucher_accounts`, `voucher_events`,
`merchant_categories`: migrations op0015, op0016)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from operators.programmable.event_rows import event_values

PROGRAMME = (
    "id, issuer, name, categories, per_holder, expires_at, status, granted, returned, nonce, "
    "order_hash, created_at, expired_at, (SELECT coalesce(sum(v.spent), 0) FROM voucher_accounts v "
    "WHERE v.programme_id = programmes.id) AS spent"
)


def add_programme(session: Session, **row: Any) -> None:
    values = {**row, "categories": json.dumps(row["categories"]), "body": json.dumps(row["body"])}
    session.execute(
        text(
            "INSERT INTO programmes (id, issuer, name, categories, per_holder, expires_at, nonce, "
            "body, signature, order_hash, created_at) VALUES (:id, :issuer, :name, "
            "CAST(:categories AS jsonb), :per_holder, :expires_at, :nonce, CAST(:body AS jsonb), "
            ":signature, :order_hash, :created_at)"
        ),
        values,
    )


def get_programme(
    session: Session, programme_id: uuid.UUID, *, lock: str | None = None
) -> dict[str, Any] | None:
    """The programme's row; `lock`: "update" (grants, the expiry sweep) or "share" (payments:
    many at once, none while the sweep holds it)."""
    suffix = {None: "", "update": " FOR UPDATE", "share": " FOR SHARE"}[lock]
    row = (
        session.execute(
            text(f"SELECT {PROGRAMME} FROM programmes WHERE id = :id{suffix}"), {"id": programme_id}
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def programme_by_nonce(session: Session, issuer: str, nonce: str) -> dict[str, Any] | None:
    row = (
        session.execute(
            text(f"SELECT {PROGRAMME} FROM programmes WHERE issuer = :i AND nonce = :n"),
            {"i": issuer, "n": nonce},
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def voucher(
    session: Session, programme_id: uuid.UUID, holder: str, *, lock: bool = False
) -> dict[str, Any] | None:
    row = (
        session.execute(
            text(
                "SELECT programme_id, holder, account_id, granted, spent, returned "
                "FROM voucher_accounts WHERE programme_id = :p AND holder = :h"
                + (" FOR UPDATE" if lock else "")
            ),
            {"p": programme_id, "h": holder},
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def add_voucher(session: Session, programme_id: uuid.UUID, holder: str, account_id: int) -> None:
    session.execute(
        text("INSERT INTO voucher_accounts (programme_id, holder, account_id) VALUES (:p, :h, :a)"),
        {"p": programme_id, "h": holder, "a": account_id},
    )


def vouchers_of(session: Session, programme_id: uuid.UUID) -> list[dict[str, Any]]:
    """The programme's voucher accounts with their ledger balances, in holder order."""
    rows = session.execute(
        text(
            "SELECT v.holder, v.account_id, v.granted, v.spent, v.returned, a.balance "
            "FROM voucher_accounts v JOIN accounts a ON a.id = v.account_id "
            "WHERE v.programme_id = :p ORDER BY v.holder"
        ),
        {"p": programme_id},
    ).mappings()
    return [dict(r) for r in rows]


def add_to(
    session: Session,
    programme_id: uuid.UUID,
    holder: str,
    *,
    granted: int = 0,
    spent: int = 0,
    returned: int = 0,
) -> None:
    """Add to the voucher account's totals, and to the programme's granted and returned
    (grants and the expiry hold the programme row exclusively). A payment (`spent`) holds the
    programme row shared and changes the voucher row only: updating the programme row too
    would deadlock two payments each holding it shared; the programme's spent is the sum of
    its vouchers'."""
    values = {"p": programme_id, "h": holder, "g": granted, "s": spent, "r": returned}
    session.execute(
        text(
            "UPDATE voucher_accounts SET granted = granted + :g, spent = spent + :s, "
            "returned = returned + :r WHERE programme_id = :p AND holder = :h"
        ),
        values,
    )
    if granted or returned:
        session.execute(
            text(
                "UPDATE programmes SET granted = granted + :g, returned = returned + :r "
                "WHERE id = :p"
            ),
            values,
        )


def add_event(session: Session, **row: Any) -> None:
    values = event_values(row)
    session.execute(
        text(
            "INSERT INTO voucher_events (programme_id, holder, kind, amount, nonce, body, "
            "signature, order_hash, order_id, entry_id, created_at) VALUES (:programme_id, "
            ":holder, :kind, :amount, :nonce, CAST(:body AS jsonb), :signature, :order_hash, "
            ":order_id, :entry_id, :created_at)"
        ),
        values,
    )


def grant_event(session: Session, programme_id: uuid.UUID, nonce: str) -> dict[str, Any] | None:
    row = (
        session.execute(
            text(
                "SELECT holder, amount, order_hash, created_at FROM voucher_events "
                "WHERE programme_id = :p AND kind = 'grant' AND nonce = :n"
            ),
            {"p": programme_id, "n": nonce},
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def due(session: Session, *, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Active programmes past their expiry, locked FOR UPDATE SKIP LOCKED (two sweepers never
    take the same one; one a payment or grant holds waits for the next pass)."""
    rows = session.execute(
        text(
            f"SELECT {PROGRAMME} FROM programmes WHERE status = 'active' AND expires_at <= :now "
            "ORDER BY expires_at, id LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"now": now, "limit": limit},
    ).mappings()
    return [dict(r) for r in rows]


def mark_expired(session: Session, programme_id: uuid.UUID, now: datetime) -> None:
    session.execute(
        text("UPDATE programmes SET status = 'expired', expired_at = :now WHERE id = :p"),
        {"p": programme_id, "now": now},
    )


def set_category(session: Session, wallet_id: str, category: str | None, now: datetime) -> None:
    if category is None:
        session.execute(
            text("DELETE FROM merchant_categories WHERE wallet_id = :w"), {"w": wallet_id}
        )
        return
    session.execute(
        text(
            "INSERT INTO merchant_categories (wallet_id, category, updated_at) VALUES (:w, :c, :t) "
            "ON CONFLICT (wallet_id) DO UPDATE SET category = EXCLUDED.category, "
            "updated_at = EXCLUDED.updated_at"
        ),
        {"w": wallet_id, "c": category, "t": now},
    )


def category_of(session: Session, wallet_id: str) -> str | None:
    value = session.execute(
        text("SELECT category FROM merchant_categories WHERE wallet_id = :w"), {"w": wallet_id}
    ).scalar_one_or_none()
    return str(value) if value is not None else None


def audit_totals(session: Session) -> dict[str, int]:
    """For the audit: value in voucher accounts; voucher accounts whose balance is not
    granted - spent - returned; negative ones; programmes whose totals differ from the sums of
    their voucher accounts; voucher accounts whose events differ from their totals (spent:
    payments less refunds; returned: expiry and refunds after it); expired programmes still
    holding value."""
    row = (
        session.execute(
            text(
                """
SELECT coalesce(sum(a.balance), 0) AS held,
       count(*) FILTER (WHERE a.balance <> v.granted - v.spent - v.returned) AS drift,
       count(*) FILTER (WHERE a.balance < 0) AS negative,
       coalesce(sum(a.balance) FILTER (WHERE p.status = 'expired'), 0) AS expired_held
FROM voucher_accounts v JOIN accounts a ON a.id = v.account_id
JOIN programmes p ON p.id = v.programme_id
"""
            )
        )
        .mappings()
        .one()
    )
    programmes = session.execute(
        text(
            """
SELECT count(*) FROM programmes p LEFT JOIN (
    SELECT programme_id, sum(granted) AS g, sum(returned) AS r
    FROM voucher_accounts GROUP BY programme_id) v ON v.programme_id = p.id
WHERE coalesce(v.g, 0) <> p.granted OR coalesce(v.r, 0) <> p.returned
"""
        )
    ).scalar_one()
    events = session.execute(
        text(
            """
SELECT count(*) FROM voucher_accounts v LEFT JOIN (
    SELECT programme_id, holder,
           coalesce(sum(amount) FILTER (WHERE kind = 'grant'), 0) AS g,
           coalesce(sum(amount) FILTER (WHERE kind = 'payment'), 0)
             - coalesce(sum(amount) FILTER (WHERE kind IN ('refund', 'refund_expired')), 0) AS s,
           coalesce(sum(amount) FILTER (WHERE kind IN ('expiry', 'refund_expired')), 0) AS r
    FROM voucher_events GROUP BY programme_id, holder) e
    ON e.programme_id = v.programme_id AND e.holder = v.holder
WHERE coalesce(e.g, 0) <> v.granted OR coalesce(e.s, 0) <> v.spent
   OR coalesce(e.r, 0) <> v.returned
"""
        )
    ).scalar_one()
    active = session.execute(
        text("SELECT count(*) FROM programmes WHERE status = 'active'")
    ).scalar_one()
    return {
        **{k: int(v) for k, v in row.items()},
        "programme_mismatch": int(programmes),
        "events_mismatch": int(events),
        "active_count": int(active),
    }
