"""All SQL of the operator service."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from operators.models import Customer, InboundSettlement, Order, OutboxJob, VaultToken, Wallet

# ------------------------------------------------------------------ customers and wallets


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


def lock_key(session: Session, namespace: str, key: str) -> None:
    """Serialise transactions on one logical key (transaction-scoped advisory lock)."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:n), hashtext(:k))"), {"n": namespace, "k": key}
    )


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


# ------------------------------------------------------------------ orders


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
    session: Session, order_id: uuid.UUID, status: str, *, failure: str | None = None
) -> None:
    session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(status=status, failure=failure, updated_at=func.now())
    )


# ------------------------------------------------------------------ vault


def add_vault_tokens(session: Session, tokens: Sequence[dict[str, Any]], *, via: str) -> int:
    if not tokens:
        return 0
    result = session.execute(
        text(
            "INSERT INTO vault_tokens (serial, amount, issued_at, signature, received_via) "
            "VALUES (:serial, :amount, :issued_at, :signature, :via) ON CONFLICT DO NOTHING"
        ),
        [
            {
                "serial": t["serial"],
                "amount": t["amount"],
                "issued_at": t["issued_at"],
                "signature": t["signature"],
                "via": via,
            }
            for t in tokens
        ],
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def reserved_tokens(session: Session, reference: str) -> list[VaultToken]:
    return list(
        session.scalars(
            select(VaultToken).where(
                VaultToken.reserved_for == reference, VaultToken.status == "reserved"
            )
        ).all()
    )


def smallest_covering_token(session: Session, amount: int) -> VaultToken | None:
    return session.scalars(
        select(VaultToken)
        .where(VaultToken.status == "held", VaultToken.amount >= amount)
        .order_by(VaultToken.amount, VaultToken.serial)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()


def held_tokens_for_update(session: Session, limit: int = 1000) -> list[VaultToken]:
    """Largest held tokens first, skipping those another transaction is reserving."""
    return list(
        session.scalars(
            select(VaultToken)
            .where(VaultToken.status == "held")
            .order_by(VaultToken.amount.desc(), VaultToken.serial)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )


def reserve_tokens(session: Session, serials: Sequence[uuid.UUID], reference: str) -> None:
    session.execute(
        update(VaultToken)
        .where(VaultToken.serial.in_(serials), VaultToken.status == "held")
        .values(status="reserved", reserved_for=reference)
    )


def release_tokens(session: Session, reference: str) -> None:
    session.execute(
        update(VaultToken)
        .where(VaultToken.reserved_for == reference, VaultToken.status == "reserved")
        .values(status="held", reserved_for=None)
    )


def tokens_gone(session: Session, serials: Sequence[str], at: datetime) -> None:
    session.execute(
        update(VaultToken)
        .where(VaultToken.serial.in_([uuid.UUID(s) for s in serials]))
        .values(status="gone", reserved_for=None, released_at=at)
    )


def vault_summary(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(
            VaultToken.status, func.count(), func.coalesce(func.sum(VaultToken.amount), 0)
        ).group_by(VaultToken.status)
    ).all()
    out: dict[str, int] = {}
    for status, count, total in rows:
        out[f"{status}_count"] = int(count)
        out[f"{status}_value"] = int(total)
    return out


# ------------------------------------------------------------------ outbox


def enqueue(session: Session, *, kind: str, reference: str, payload: dict[str, Any]) -> None:
    session.execute(
        text(
            "INSERT INTO outbox (kind, reference, payload) VALUES (:k, :r, CAST(:p AS jsonb)) "
            "ON CONFLICT (kind, reference) DO NOTHING"
        ),
        {"k": kind, "r": reference, "p": _json(payload)},
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
    session: Session, *, limit: int, lease_seconds: int, reference: str | None = None
) -> list[OutboxJob]:
    """Take due jobs (or the named one) and lease them, so no other worker runs them now."""
    where = "status = 'pending' AND next_attempt_at <= now()"
    params: dict[str, Any] = {"limit": limit, "lease": lease_seconds}
    if reference is not None:
        where += " AND reference = :ref"
        params["ref"] = reference
    ids = (
        session.execute(
            text(
                f"UPDATE outbox SET attempts = attempts + 1, "
                f"next_attempt_at = now() + make_interval(secs => :lease) "
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
    session: Session, job_id: int, *, status: str = "done", error: str | None = None
) -> None:
    session.execute(
        update(OutboxJob)
        .where(OutboxJob.id == job_id)
        .values(status=status, done_at=func.now(), last_error=error)
    )


def retry_job_later(session: Session, job_id: int, *, delay_seconds: float, error: str) -> None:
    session.execute(
        text(
            "UPDATE outbox SET next_attempt_at = now() + make_interval(secs => :d), "
            "last_error = :e WHERE id = :id AND status = 'pending'"
        ),
        {"d": delay_seconds, "e": error[:2000], "id": job_id},
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


# ------------------------------------------------------------------ inbound settlements


def get_inbound(session: Session, settlement_id: uuid.UUID) -> InboundSettlement | None:
    return session.get(InboundSettlement, settlement_id)


def add_inbound(session: Session, inbound: InboundSettlement) -> None:
    session.add(inbound)
    session.flush()


def lock_inbound_key(session: Session, settlement_id: str) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": settlement_id})


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
