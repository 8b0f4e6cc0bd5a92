"""All SQL of the operator service."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from cbdc.sqlarrays import text_array
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


# ------------------------------------------------------------------ AML


def recent_alert_exists(session: Session, *, wallet_id: str, rule: str, since: datetime) -> bool:
    return (
        session.execute(
            text(
                "SELECT 1 FROM aml_alerts WHERE wallet_id = :w AND rule = :r "
                "AND created_at >= :since LIMIT 1"
            ),
            {"w": wallet_id, "r": rule, "since": since},
        ).first()
        is not None
    )


def add_alert(
    session: Session,
    *,
    alert_id: uuid.UUID,
    wallet_id: str,
    rule: str,
    amount: int,
    details: dict[str, Any],
    at: datetime,
) -> None:
    session.execute(
        text(
            "INSERT INTO aml_alerts (id, wallet_id, rule, amount, details, created_at) "
            "VALUES (:i, :w, :r, :a, CAST(:d AS jsonb), :at)"
        ),
        {"i": alert_id, "w": wallet_id, "r": rule, "a": amount, "d": _json(details), "at": at},
    )


def count_payments_between(
    session: Session,
    *,
    wallet_id: str,
    since: datetime,
    low: int | None = None,
    high: int | None = None,
) -> int:
    """Outgoing payments of a wallet since `since`, optionally with low <= amount < high."""
    return int(
        session.execute(
            text(
                "SELECT count(*) FROM orders WHERE wallet_id = :w AND kind = 'payment' "
                "AND created_at >= :since AND status <> 'failed' "
                "AND (CAST(:low AS bigint) IS NULL OR amount >= :low) "
                "AND (CAST(:high AS bigint) IS NULL OR amount < :high)"
            ),
            {"w": wallet_id, "since": since, "low": low, "high": high},
        ).scalar_one()
    )


def distinct_payees(session: Session, *, wallet_id: str, since: datetime) -> int:
    return int(
        session.execute(
            text(
                "SELECT count(DISTINCT counterparty) FROM orders WHERE wallet_id = :w "
                "AND kind = 'payment' AND created_at >= :since AND status <> 'failed'"
            ),
            {"w": wallet_id, "since": since},
        ).scalar_one()
    )


def distinct_payers(session: Session, *, wallet_id: str, since: datetime) -> int:
    """Distinct payers of a wallet: same-operator payers plus cross-operator payer aliases."""
    return int(
        session.execute(
            text(
                "SELECT (SELECT count(DISTINCT wallet_id) FROM orders WHERE counterparty = :w "
                "AND kind = 'payment' AND created_at >= :since AND status <> 'failed') + "
                "(SELECT count(DISTINCT payer_alias) FROM inbound_settlements "
                "WHERE payee_wallet = :w AND kind = 'payment' AND created_at >= :since)"
            ),
            {"w": wallet_id, "since": since},
        ).scalar_one()
    )


def exchange_totals(session: Session, *, account_id: int, since: datetime) -> tuple[int, int]:
    """What came into a wallet from outside (deposit loads and cash over the counter) and what
    went back out to the deposit, since `since`."""
    row = session.execute(
        text(
            "SELECT coalesce(sum(p.amount) FILTER (WHERE j.kind IN ('load', 'cash_load')), 0) "
            "AS loaded, coalesce(-sum(p.amount) FILTER (WHERE j.kind = 'unload'), 0) AS unloaded "
            "FROM postings p JOIN journal_entries j ON j.id = p.entry_id "
            "WHERE p.account_id = :a AND j.created_at >= :since"
        ),
        {"a": account_id, "since": since},
    ).one()
    return int(row.loaded), int(row.unloaded)


def list_alerts(
    session: Session, *, rule: str | None, wallet_id: str | None, limit: int
) -> list[dict[str, Any]]:
    rows = (
        session.execute(
            text(
                "SELECT id, wallet_id, rule, amount, details, created_at FROM aml_alerts "
                "WHERE (CAST(:r AS text) IS NULL OR rule = :r) "
                "AND (CAST(:w AS text) IS NULL OR wallet_id = :w) ORDER BY created_at DESC LIMIT :l"
            ),
            {"r": rule, "w": wallet_id, "l": limit},
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


# ------------------------------------------------------------------ AML over a batch


def payer_window_stats(
    session: Session,
    *,
    wallet_ids: list[str],
    velocity_since: datetime,
    fan_since: datetime,
    velocity_count: int,
    fan_count: int,
) -> list[Any]:
    """Payers among `wallet_ids` at or over the velocity or fan-out threshold: rows of
    (wallet_id, velocity, payees)."""
    return list(
        session.execute(
            text(
                "SELECT wallet_id, count(*) FILTER (WHERE created_at >= :vs) AS velocity, "
                "count(DISTINCT counterparty) FILTER (WHERE created_at >= :fs) AS payees "
                "FROM orders WHERE wallet_id = ANY(CAST(:w AS text[])) AND kind = 'payment' "
                "AND status <> 'failed' AND created_at >= least(CAST(:vs AS timestamptz), "
                "CAST(:fs AS timestamptz)) GROUP BY wallet_id "
                "HAVING count(*) FILTER (WHERE created_at >= :vs) >= :vc "
                "OR count(DISTINCT counterparty) FILTER (WHERE created_at >= :fs) >= :fc"
            ),
            {
                "w": text_array(wallet_ids),
                "vs": velocity_since,
                "fs": fan_since,
                "vc": velocity_count,
                "fc": fan_count,
            },
        ).all()
    )


def near_limit_counts(
    session: Session, *, bounds: dict[str, tuple[int, int, int]], since: datetime
) -> dict[str, int]:
    """Per wallet, its payments since `since` with low <= amount < high."""
    ids = list(bounds)
    rows = session.execute(
        text(
            "SELECT o.wallet_id, count(*) AS n FROM orders o JOIN unnest(CAST(:w AS text[]), "
            "CAST(:lo AS bigint[]), CAST(:hi AS bigint[])) AS b(wallet_id, lo, hi) "
            "ON o.wallet_id = b.wallet_id WHERE o.kind = 'payment' AND o.status <> 'failed' "
            "AND o.created_at >= :since AND o.amount >= b.lo AND o.amount < b.hi "
            "GROUP BY o.wallet_id"
        ),
        {
            "w": ids,
            "lo": [bounds[w][0] for w in ids],
            "hi": [bounds[w][1] for w in ids],
            "since": since,
        },
    ).all()
    return {r.wallet_id: int(r.n) for r in rows}


def payee_fan_in(
    session: Session, *, wallet_ids: list[str], since: datetime, at_least: int
) -> dict[str, int]:
    """Payees among `wallet_ids` paid by at least `at_least` distinct payers since `since`
    (same-operator payers plus cross-operator payer aliases)."""
    rows = session.execute(
        text(
            "SELECT payee, sum(n) AS n FROM ("
            "SELECT counterparty AS payee, count(DISTINCT wallet_id) AS n FROM orders "
            "WHERE counterparty = ANY(CAST(:w AS text[])) AND kind = 'payment' "
            "AND status <> 'failed' "
            "AND created_at >= :since GROUP BY counterparty "
            "UNION ALL SELECT payee_wallet, count(DISTINCT payer_alias) FROM "
            "inbound_settlements WHERE payee_wallet = ANY(CAST(:w AS text[])) AND kind = 'payment' "
            "AND created_at >= :since GROUP BY payee_wallet) x "
            "GROUP BY payee HAVING sum(n) >= :k"
        ),
        {"w": text_array(wallet_ids), "since": since, "k": at_least},
    ).all()
    return {r.payee: int(r.n) for r in rows}


def last_alerts(session: Session, *, wallet_ids: list[str]) -> dict[tuple[str, str], datetime]:
    rows = session.execute(
        text(
            "SELECT wallet_id, rule, max(created_at) AS at FROM aml_alerts "
            "WHERE wallet_id = ANY(CAST(:w AS text[])) GROUP BY wallet_id, rule"
        ),
        {"w": text_array(wallet_ids)},
    ).all()
    return {(r.wallet_id, r.rule): r.at for r in rows}
