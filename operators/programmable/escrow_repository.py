"""SQL of escrow (tables `escrows`, `escrow_events`: migrations op0013)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from operators.programmable.event_rows import event_values

COLUMNS = (
    "id, payer, payee, arbiter, amount, released, refunded, deadline, memo, status, account_id, "
    "order_id, created_at, closed_at"
)


def add_escrow(session: Session, **row: Any) -> None:
    session.execute(
        text(
            "INSERT INTO escrows (id, payer, payee, arbiter, amount, deadline, memo, account_id, "
            "order_id, created_at) VALUES (:id, :payer, :payee, :arbiter, :amount, :deadline, "
            ":memo, :account_id, :order_id, :created_at)"
        ),
        row,
    )


def get_escrow(
    session: Session, escrow_id: uuid.UUID, *, lock: bool = False
) -> dict[str, Any] | None:
    """The escrow's row; with `lock`, locked FOR UPDATE (every change to an escrow holds it:
    releases, refunds and the deadline sweep are serialised on it)."""
    row = (
        session.execute(
            text(f"SELECT {COLUMNS} FROM escrows WHERE id = :id" + (" FOR UPDATE" if lock else "")),
            {"id": escrow_id},
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def escrow_by_order(session: Session, order_id: uuid.UUID) -> dict[str, Any] | None:
    row = (
        session.execute(text(f"SELECT {COLUMNS} FROM escrows WHERE order_id = :o"), {"o": order_id})
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def wallet_escrows(session: Session, wallet_id: str, *, limit: int) -> list[dict[str, Any]]:
    """Escrows the wallet pays, receives or arbitrates here, newest first."""
    rows = session.execute(
        text(
            f"SELECT {COLUMNS} FROM escrows WHERE payer = :w OR payee = :w OR arbiter = :w "
            "ORDER BY created_at DESC, id LIMIT :limit"
        ),
        {"w": wallet_id, "limit": limit},
    ).mappings()
    return [dict(r) for r in rows]


def settle(
    session: Session,
    escrow_id: uuid.UUID,
    *,
    released: int = 0,
    refunded: int = 0,
    now: datetime,
) -> None:
    """Add to the escrow's released or refunded value; closes it when nothing remains."""
    session.execute(
        text(
            "UPDATE escrows SET released = released + :rel, refunded = refunded + :ref, "
            "status = CASE WHEN released + :rel + refunded + :ref < amount THEN 'open' "
            "WHEN refunded + :ref > 0 THEN 'refunded' ELSE 'released' END, "
            "closed_at = CASE WHEN released + :rel + refunded + :ref < amount THEN NULL "
            "ELSE CAST(:now AS timestamptz) END WHERE id = :id"
        ),
        {"id": escrow_id, "rel": released, "ref": refunded, "now": now},
    )


def find_event(
    session: Session, escrow_id: uuid.UUID, by_wallet: str, nonce: str
) -> dict[str, Any] | None:
    row = (
        session.execute(
            text(
                "SELECT id, kind, amount, by_wallet, order_hash, order_id, created_at "
                "FROM escrow_events WHERE escrow_id = :e AND by_wallet = :b AND nonce = :n"
            ),
            {"e": escrow_id, "b": by_wallet, "n": nonce},
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def add_event(session: Session, **row: Any) -> None:
    values = event_values(row, "by_wallet")
    session.execute(
        text(
            "INSERT INTO escrow_events (escrow_id, kind, amount, by_wallet, nonce, body, "
            "signature, order_hash, order_id, entry_id, created_at) VALUES (:escrow_id, :kind, "
            ":amount, :by_wallet, :nonce, CAST(:body AS jsonb), :signature, :order_hash, "
            ":order_id, :entry_id, :created_at)"
        ),
        values,
    )


def events(session: Session, escrow_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            "SELECT kind, amount, by_wallet, order_id, created_at FROM escrow_events "
            "WHERE escrow_id = :e ORDER BY id"
        ),
        {"e": escrow_id},
    ).mappings()
    return [dict(r) for r in rows]


def due(
    session: Session, *, now: datetime, limit: int, skip: Collection[uuid.UUID] = ()
) -> list[dict[str, Any]]:
    """Open escrows past their deadline, locked (FOR UPDATE SKIP LOCKED: two sweepers, or a
    sweeper and a release, never take the same one twice), but those in `skip`."""
    rows = session.execute(
        text(
            f"SELECT {COLUMNS} FROM escrows WHERE status = 'open' AND deadline <= :now "
            "AND NOT id = ANY(CAST(:skip AS uuid[])) "
            "ORDER BY deadline, id LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"now": now, "limit": limit, "skip": [str(k) for k in skip]},
    ).mappings()
    return [dict(r) for r in rows]


def audit_totals(session: Session) -> dict[str, int]:
    """For the audit: value in escrow accounts; escrows whose account is not amount - released
    - refunded, or whose status disagrees with what remains; negative escrow accounts; value
    the events record differing from the escrows' released and refunded."""
    row = (
        session.execute(
            text(
                """
SELECT coalesce(sum(a.balance), 0) AS held,
       count(*) FILTER (WHERE a.balance <> e.amount - e.released - e.refunded) AS drift,
       count(*) FILTER (WHERE (e.status = 'open') <> (e.released + e.refunded < e.amount))
           AS bad_status,
       count(*) FILTER (WHERE a.balance < 0) AS negative,
       count(*) FILTER (WHERE e.status = 'open') AS open_count,
       count(*) AS total_count
FROM escrows e JOIN accounts a ON a.id = e.account_id
"""
            )
        )
        .mappings()
        .one()
    )
    mismatched = session.execute(
        text(
            """
SELECT count(*) FROM escrows e LEFT JOIN (
    SELECT escrow_id,
           coalesce(sum(amount) FILTER (WHERE kind = 'release'), 0) AS rel,
           coalesce(sum(amount) FILTER (WHERE kind <> 'release'), 0) AS ref
    FROM escrow_events GROUP BY escrow_id) v ON v.escrow_id = e.id
WHERE coalesce(v.rel, 0) <> e.released OR coalesce(v.ref, 0) <> e.refunded
"""
        )
    ).scalar_one()
    return {**{k: int(v) for k, v in row.items()}, "events_mismatch": int(mismatched)}
