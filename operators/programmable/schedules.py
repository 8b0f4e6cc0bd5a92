"""Scheduled payments: a payer's signed standing order to pay a payee later, once or every so
often (docs/programmable.md). This module creates, cancels and shows schedules; the executions
are `operators.programmable.schedules_run`.

A schedule locks nothing. Its authority is the payer's signed `schedule` order, stored with it
and shown with it; each execution is an ordinary payment through `pay_many` (same limits, same
cross-operator settlement) under the nonce `sched:<schedule id>:<n>`, made by the operator's job
runner once the schedule's `next_at` has come (`schedules_run.sweep`)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.clock import iso, parse_iso
from cbdc.errors import IdempotencyMismatch, ValidationFailed
from operators import repository as repo
from operators.context import OperatorContext
from operators.errors import InvalidWalletId, SelfPayment, UnknownOperator, UnknownWallet
from operators.payments import orders
from operators.programmable import schedules_repository as sched_repo
from operators.programmable.schedule_errors import (
    ScheduleClosed,
    ScheduleCountInvalid,
    ScheduleIntervalInvalid,
    ScheduleTimeInvalid,
    UnknownSchedule,
)
from operators.wallets import limits
from operators.wallets import repository as wallet_repo
from operators.wallets import service as wallet_service

MAX_AHEAD = timedelta(days=366)
MIN_EVERY_SECONDS = 60
MAX_EVERY_SECONDS = 366 * 86400
MAX_COUNT = 1000


def create_schedule(
    session: Session, ctx: OperatorContext, *, order: dict[str, Any], signature: str
) -> dict[str, Any]:
    """Check and store a signed `schedule` order (idempotent on its nonce: the same order again
    answers the same schedule, `replayed`)."""
    now = ctx.now()
    payer = wallet_service.require_wallet(session, ctx, order["payer"])
    orders.check_currency(ctx, order)
    order_hash = orders.check_signed_order(payer, order, signature, now=now)
    repo.lock_key(session, f"schedule-nonce:{payer.id}", order["nonce"])
    earlier = sched_repo.by_nonce(session, payer.id, order["nonce"])
    if earlier is not None:
        if earlier["order_hash"] != order_hash:
            raise IdempotencyMismatch("this nonce was already used by a different schedule")
        return {**schedule_view(session, earlier), "replayed": True}
    limits.require_active(payer, "payer wallet")
    _check_payee(session, ctx, payer.id, order["payee"])
    first_at, every, count = _check_times(order, now=now)
    schedule_id = uuid.uuid4()
    sched_repo.insert_schedule(
        session,
        schedule_id=schedule_id,
        payer=payer.id,
        payee=order["payee"],
        amount=order["amount"],
        first_at=first_at,
        every_seconds=every,
        count=count,
        memo=order.get("memo"),
        nonce=order["nonce"],
        body=order,
        signature=signature,
        order_hash=order_hash,
        now=now,
    )
    created = sched_repo.get(session, schedule_id)
    assert created is not None
    return {**schedule_view(session, created), "replayed": False}


def cancel_schedule(
    session: Session, ctx: OperatorContext, *, schedule_id: str, wallet_id: str | None
) -> dict[str, Any]:
    """Cancel (the payer, or staff: `wallet_id` None). Waits for an execution in progress (the
    row lock): it happened before the cancel, or none happens after it. Cancelling a cancelled
    schedule answers it again; a completed one is 409 `schedule_closed`."""
    row = _require(session, schedule_id, wallet_id=wallet_id, lock=True)
    if row["status"] == "completed":
        raise ScheduleClosed(f"schedule {schedule_id} has completed its {row['count']} executions")
    if row["status"] == "active":
        sched_repo.cancel(session, row["id"], now=ctx.now())
        row = sched_repo.get(session, row["id"]) or row
    return schedule_view(session, row)


def get_schedule(session: Session, *, schedule_id: str, wallet_id: str | None) -> dict[str, Any]:
    return schedule_view(session, _require(session, schedule_id, wallet_id=wallet_id))


def wallet_schedules(session: Session, wallet_id: str) -> dict[str, Any]:
    rows = sched_repo.of_wallet(session, wallet_id)
    return {"wallet_id": wallet_id, "schedules": [schedule_view(session, r) for r in rows]}


def schedule_view(session: Session, row: dict[str, Any]) -> dict[str, Any]:
    body = row["body"]
    return {
        "schedule_id": str(row["id"]),
        "status": row["status"],
        "payer": row["payer"],
        "payee": row["payee"],
        "amount": row["amount"],
        "currency": body["currency"],
        "first_at": iso(row["first_at"]),
        "every": row["every_seconds"],
        "count": row["count"],
        "executed": row["executed"],
        "next_at": iso(row["next_at"]) if row["next_at"] is not None else None,
        "memo": row["memo"],
        "created_at": iso(row["created_at"]),
        "closed_at": iso(row["closed_at"]) if row["closed_at"] is not None else None,
        "order": body,
        "signature": row["signature"],
        "executions": [
            {
                "n": e["n"],
                "due_at": iso(e["due_at"]),
                "executed_at": iso(e["executed_at"]),
                "outcome": e["outcome"],
                "payment_id": str(e["order_id"]),
                "payment_status": e["payment_status"],
                "failure": e["failure"] or e["payment_failure"],
            }
            for e in sched_repo.executions(session, row["id"])
        ],
    }


def _require(
    session: Session, schedule_id: str, *, wallet_id: str | None, lock: bool = False
) -> dict[str, Any]:
    try:
        key = uuid.UUID(schedule_id)
    except ValueError:
        raise ValidationFailed("schedule_id must be a UUID") from None
    row = sched_repo.get(session, key, lock=lock)
    if row is None or (wallet_id is not None and row["payer"] != wallet_id):
        raise UnknownSchedule(f"no schedule {schedule_id}")  # do not reveal others' schedules
    return row


def _check_payee(session: Session, ctx: OperatorContext, payer: str, payee: str) -> None:
    if not is_valid_wallet_id(payee):
        raise InvalidWalletId(f"payee {payee!r} is not a valid wallet id")
    if payee == payer:
        raise SelfPayment("payer and payee are the same wallet")
    peer = routing_code(payee)
    if peer == ctx.code:
        if wallet_repo.get_wallet(session, payee) is None:
            raise UnknownWallet(f"no payee wallet {payee}")
    elif ctx.central_bank.operator(peer) is None:
        raise UnknownOperator(f"no operator with routing code {peer}")


def _check_times(order: dict[str, Any], *, now: datetime) -> tuple[datetime, int | None, int]:
    try:
        first_at = parse_iso(order["first_at"])
    except (ValueError, TypeError):
        raise ValidationFailed("order.first_at: must be ISO 8601 with a time zone") from None
    if not now < first_at <= now + MAX_AHEAD:
        raise ScheduleTimeInvalid(f"first_at {order['first_at']} is not within the next 366 days")
    every = order["every"]
    if every is not None and not MIN_EVERY_SECONDS <= every <= MAX_EVERY_SECONDS:
        raise ScheduleIntervalInvalid(f"every={every} seconds is outside 60 s .. 366 days")
    count = order["count"]
    if not 1 <= count <= MAX_COUNT or (every is None and count != 1):
        raise ScheduleCountInvalid(f"count={count} (every={every})")
    return first_at, every, count
