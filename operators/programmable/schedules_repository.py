"""The SQL of scheduled payments: the `schedules` and `schedule_executions` tables (migration
op0014). Rows are plain mappings; the service (`schedules`) and the runner (`schedules_run`)
give them meaning.

Locking: an execution takes its due schedule row `FOR UPDATE SKIP LOCKED` (another runner
executing it, or a cancel holding it, makes this runner pass over it), then the accounts the
payment touches (`pay_many`, ascending id order). A cancel takes the row `FOR UPDATE` (waiting
for an execution in progress) and nothing else, so the two cannot deadlock."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

_COLUMNS = (
    "id, payer, payee, amount, first_at, every_seconds, count, executed, next_at, status, "
    "memo, nonce, body, signature, order_hash, created_at, closed_at"
)


def insert_schedule(
    session: Session,
    *,
    schedule_id: uuid.UUID,
    payer: str,
    payee: str,
    amount: int,
    first_at: datetime,
    every_seconds: int | None,
    count: int,
    memo: str | None,
    nonce: str,
    body: dict[str, Any],
    signature: str,
    order_hash: str,
    now: datetime,
) -> None:
    session.execute(
        text(
            "INSERT INTO schedules (id, payer, payee, amount, first_at, every_seconds, count, "
            "next_at, memo, nonce, body, signature, order_hash, created_at) VALUES (:id, :payer, "
            ":payee, :amount, :first_at, :every, :count, :first_at, :memo, :nonce, "
            "CAST(:body AS jsonb), :signature, :hash, :now)"
        ),
        {
            "id": schedule_id,
            "payer": payer,
            "payee": payee,
            "amount": amount,
            "first_at": first_at,
            "every": every_seconds,
            "count": count,
            "memo": memo,
            "nonce": nonce,
            "body": json.dumps(body),
            "signature": signature,
            "hash": order_hash,
            "now": now,
        },
    )


def by_nonce(session: Session, payer: str, nonce: str) -> dict[str, Any] | None:
    row = (
        session.execute(
            text(f"SELECT {_COLUMNS} FROM schedules WHERE payer = :p AND nonce = :n"),
            {"p": payer, "n": nonce},
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def get(session: Session, schedule_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any] | None:
    sql = f"SELECT {_COLUMNS} FROM schedules WHERE id = :id" + (" FOR UPDATE" if lock else "")
    row = session.execute(text(sql), {"id": schedule_id}).mappings().first()
    return dict(row) if row is not None else None


def claim_due(
    session: Session,
    *,
    now: datetime,
    schedule_id: uuid.UUID | None = None,
    skip: Collection[uuid.UUID] = (),
) -> dict[str, Any] | None:
    """The earliest due active schedule (or the named one, if due), locked; one another
    transaction holds is passed over (SKIP LOCKED), and so are those in `skip` (the runner's
    failing ones)."""
    where = "status = 'active' AND next_at <= :now"
    params: dict[str, Any] = {"now": now}
    if schedule_id is not None:
        where += " AND id = :id"
        params["id"] = schedule_id
    if skip:
        where += " AND id <> ALL(CAST(:skip AS uuid[]))"
        params["skip"] = [str(k) for k in skip]
    row = (
        session.execute(
            text(
                f"SELECT {_COLUMNS} FROM schedules WHERE {where} "
                "ORDER BY next_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
            ),
            params,
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def advance(
    session: Session,
    schedule_id: uuid.UUID,
    *,
    executed: int,
    next_at: datetime | None,
    now: datetime,
) -> None:
    """Record `executed` executions; `next_at` None: the last one, the schedule completes."""
    session.execute(
        text(
            "UPDATE schedules SET executed = :executed, next_at = :next_at, "
            "status = CASE WHEN CAST(:next_at AS timestamptz) IS NULL THEN 'completed' "
            "ELSE status END, "
            "closed_at = CASE WHEN CAST(:next_at AS timestamptz) IS NULL THEN :now "
            "ELSE closed_at END WHERE id = :id"
        ),
        {"executed": executed, "next_at": next_at, "now": now, "id": schedule_id},
    )


def cancel(session: Session, schedule_id: uuid.UUID, *, now: datetime) -> None:
    session.execute(
        text(
            "UPDATE schedules SET status = 'cancelled', next_at = NULL, closed_at = :now "
            "WHERE id = :id AND status = 'active'"
        ),
        {"id": schedule_id, "now": now},
    )


def add_execution(
    session: Session,
    *,
    schedule_id: uuid.UUID,
    n: int,
    due_at: datetime,
    now: datetime,
    order_id: uuid.UUID,
    failure: str | None,
) -> None:
    session.execute(
        text(
            "INSERT INTO schedule_executions (schedule_id, n, due_at, executed_at, outcome, "
            "order_id, failure) VALUES (:id, :n, :due, :now, :outcome, :order, :failure)"
        ),
        {
            "id": schedule_id,
            "n": n,
            "due": due_at,
            "now": now,
            "outcome": "refused" if failure else "paid",
            "order": order_id,
            "failure": failure,
        },
    )


def executions(session: Session, schedule_id: uuid.UUID) -> list[dict[str, Any]]:
    """The schedule's executions with their payments' current status (a cross-operator one
    settles, or is refunded, after it was executed)."""
    rows = session.execute(
        text(
            "SELECT e.n, e.due_at, e.executed_at, e.outcome, e.order_id, e.failure, "
            "o.status AS payment_status, o.failure AS payment_failure "
            "FROM schedule_executions e JOIN orders o ON o.id = e.order_id "
            "WHERE e.schedule_id = :id ORDER BY e.n"
        ),
        {"id": schedule_id},
    ).mappings()
    return [dict(r) for r in rows]


def of_wallet(session: Session, wallet_id: str, *, limit: int = 200) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            f"SELECT {_COLUMNS} FROM schedules WHERE payer = :w "
            "ORDER BY created_at DESC, id LIMIT :limit"
        ),
        {"w": wallet_id, "limit": limit},
    ).mappings()
    return [dict(r) for r in rows]


def next_due(session: Session, schedule_id: uuid.UUID) -> datetime | None:
    """When the schedule is next due (None: it is completed or cancelled)."""
    value: datetime | None = session.execute(
        text("SELECT next_at FROM schedules WHERE id = :id AND status = 'active'"),
        {"id": schedule_id},
    ).scalar()
    return value
