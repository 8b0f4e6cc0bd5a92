"""SQL every area of the operator shares: advisory locks, ledger accounts, the outbox, staff
idempotency and queue depths. Each area has its own queries besides (`operators.<area>.repository`,
`operators.wallets.identity_repository`, `operators.compliance.repository`, and the raw SQL of
`operators.payments.payment_sql` and `operators.wallets.states`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from operators.models import OutboxJob

# ------------------------------------------------------------------ locks and accounts


def lock_key(session: Session, namespace: str, key: str) -> None:
    """Serialise transactions on one logical key (transaction-scoped advisory lock)."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:n), hashtext(:k))"), {"n": namespace, "k": key}
    )


def add_numbered_account(session: Session, *, prefix: str, kind: str) -> int:
    """A new account coded "<prefix>:<its id>", in one statement."""
    return int(
        session.execute(
            text(
                "INSERT INTO accounts (id, code, kind) "
                "SELECT n, :p || ':' || n, :k FROM nextval('accounts_id_seq') AS n RETURNING id"
            ),
            {"p": prefix, "k": kind},
        ).scalar_one()
    )


def account_balance(session: Session, account_id: int) -> int:
    return int(
        session.execute(
            text("SELECT balance FROM accounts WHERE id = :a"), {"a": account_id}
        ).scalar_one()
    )


def account_balances(session: Session, account_ids: Sequence[int]) -> dict[str, int]:
    """Code -> balance of these accounts (e.g. the context's system accounts), in one read."""
    rows = session.execute(
        text("SELECT code, balance FROM accounts WHERE id = ANY(:ids)"), {"ids": list(account_ids)}
    ).all()
    return {str(code): int(balance) for code, balance in rows}


def negative_balance_count(session: Session) -> int:
    """Accounts below zero that may not be (0 while the ledger's constraint holds)."""
    return int(
        session.execute(
            text("SELECT count(*) FROM accounts WHERE NOT allow_negative AND balance < 0")
        ).scalar_one()
    )


# ------------------------------------------------------------------ outbox


def enqueue(
    session: Session, *, kind: str, reference: str, payload: dict[str, Any], now: datetime
) -> None:
    """Queue a job, due at `now` (the context's clock)."""
    session.execute(
        text(
            "INSERT INTO outbox (kind, reference, payload, next_attempt_at) "
            "VALUES (:k, :r, CAST(:p AS jsonb), :now) "
            "ON CONFLICT (kind, reference) DO NOTHING"
        ),
        {"k": kind, "r": reference, "p": _json(payload), "now": now},
    )


def _json(value: Any) -> str:
    return json.dumps(value)


def has_pending(session: Session, kind: str) -> bool:
    return bool(
        session.scalar(
            select(func.count()).where(OutboxJob.kind == kind, OutboxJob.status == "pending")
        )
    )


def claim_jobs(
    session: Session,
    *,
    now: datetime,
    limit: int,
    lease_seconds: int,
    reference: str | None = None,
) -> list[OutboxJob]:
    """Take jobs due at `now` (or the named one, if due) and lease them, so no other worker
    runs them now."""
    where = "status = 'pending' AND next_attempt_at <= :now"
    params: dict[str, Any] = {"limit": limit, "lease": lease_seconds, "now": now}
    if reference is not None:
        where += " AND reference = :ref"
        params["ref"] = reference
    ids = (
        session.execute(
            text(
                f"UPDATE outbox SET attempts = attempts + 1, "
                f"next_attempt_at = :now + make_interval(secs => :lease) "
                f"WHERE id IN (SELECT id FROM outbox WHERE {where} ORDER BY id LIMIT :limit "
                f"FOR UPDATE SKIP LOCKED) RETURNING id"
            ),
            params,
        )
        .scalars()
        .all()
    )
    if not ids:
        return []
    return list(session.scalars(select(OutboxJob).where(OutboxJob.id.in_(ids))).all())


def lock_job(session: Session, job_id: int) -> OutboxJob | None:
    return session.scalars(
        select(OutboxJob).where(OutboxJob.id == job_id).with_for_update()
    ).first()


def job_status(session: Session, job_id: int) -> str | None:
    return session.scalar(select(OutboxJob.status).where(OutboxJob.id == job_id))


def job_by_reference(session: Session, reference: str) -> OutboxJob | None:
    return session.scalars(select(OutboxJob).where(OutboxJob.reference == reference)).first()


def finish_job(
    session: Session,
    job_id: int,
    *,
    now: datetime,
    status: str = "done",
    error: str | None = None,
) -> None:
    session.execute(
        update(OutboxJob)
        .where(OutboxJob.id == job_id)
        .values(status=status, done_at=now, last_error=error)
    )


def retry_job_later(
    session: Session, job_id: int, *, now: datetime, delay_seconds: float, error: str
) -> None:
    """Leave the job pending, due `delay_seconds` after `now`."""
    session.execute(
        text(
            "UPDATE outbox SET next_attempt_at = :now + make_interval(secs => :d), "
            "last_error = :e WHERE id = :id AND status = 'pending'"
        ),
        {"now": now, "d": delay_seconds, "e": error[:2000], "id": job_id},
    )


def outbox_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(OutboxJob.status, func.count()).group_by(OutboxJob.status)).all()
    return {str(status): int(n) for status, n in rows}


def failed_jobs(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    rows = session.execute(
        select(OutboxJob.id, OutboxJob.kind, OutboxJob.reference, OutboxJob.last_error)
        .where(OutboxJob.status == "failed")
        .order_by(OutboxJob.id.desc())
        .limit(limit)
    ).all()
    return [dict(r._mapping) for r in rows]


# ------------------------------------------------------------------ staff idempotency


def find_idempotency(session: Session, key_id: str, idem_key: str) -> tuple[str, Any] | None:
    row = session.execute(
        text(
            "SELECT request_hash, response FROM idempotency_records "
            "WHERE key_id = :k AND idem_key = :i"
        ),
        {"k": key_id, "i": idem_key},
    ).first()
    return (str(row.request_hash), row.response) if row else None


def save_idempotency(
    session: Session, key_id: str, idem_key: str, request_hash: str, response: Any
) -> None:
    session.execute(
        text(
            "INSERT INTO idempotency_records (key_id, idem_key, request_hash, response) "
            "VALUES (:k, :i, :h, CAST(:r AS jsonb))"
        ),
        {"k": key_id, "i": idem_key, "h": request_hash, "r": _json(response)},
    )


def lock_idempotency_key(session: Session, key_id: str, idem_key: str) -> None:
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k), hashtext(:i))"),
        {"k": key_id, "i": idem_key},
    )


def queue_depths(session: Session) -> dict[str, int]:
    """Settlement work waiting here, for /metrics: outbox jobs not done, net-settlement items
    not yet handed to the clearing house, and those handed in but not settled. Each count is
    answered from a partial index (ix_outbox_due, ix_net_items_open, ix_net_items_in_flight),
    and bounded in time so a slow database cannot hold a scrape."""
    session.execute(text("SET LOCAL statement_timeout = 2000"))
    row = session.execute(
        text(
            "SELECT (SELECT count(*) FROM outbox WHERE status = 'pending') AS outbox_pending, "
            "(SELECT count(*) FROM net_items WHERE status = 'open') AS net_items_open, "
            "(SELECT count(*) FROM net_items WHERE status = 'submitted') AS net_items_submitted"
        )
    ).one()
    return {key: int(value) for key, value in row._mapping.items()}
