"""Executing scheduled payments: the due sweep of the operator's job runner.

`execute_next(session, ctx)` takes the earliest due active schedule (row locked, SKIP LOCKED:
two runners never take the same one), checks that its stored order still verifies against the
payer's key (the narrow authority path: `pay_many` itself trusts its caller, and this is the
only caller that pays on a schedule's signature), and makes its n-th execution a payment
through `pay_many` with the nonce `sched:<schedule id>:<n>`, in the same transaction as
advancing the schedule (next_at += every, or `completed` after `count`). Exactly once: the row
lock and the `executed` counter order the executions, and the nonce is unique per wallet, so
even a second attempt at the same n would replay the first payment instead of paying again.

A refused execution (insufficient funds, a limit, the payee's cap, a closed wallet) is kept as
a refused order of the payer under that nonce (its refused orders and history show it) and as
the schedule's execution with the problem code; the schedule goes on to its next time.

Missed times (the operator was down): each missed occurrence is executed once, in order, when
the runner is back (catch up), each in a transaction of its own; `count` bounds how many.

Who runs it: the operator's job runner, at each pass (`sweep`, an `operators.jobs.Sweep`), like
the outbox jobs; nothing is queued per schedule (a schedule due in a year is not a pending job
that an audit's drain would wait for). The state is in the database only, so a restarted
operator, or a second runner, takes the due schedules where they are.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from cbdc.crypto import canonical_json, sha256_hex, verify_json
from cbdc.errors import DomainError
from cbdc.outages import database_unavailable
from operators.context import OperatorContext
from operators.jobs import JobRunner
from operators.models import Order
from operators.payments.batch import Instruction, pay_many
from operators.programmable import schedules_repository as sched_repo
from operators.programmable.schedule_errors import ScheduleAuthorityInvalid
from operators.wallets import repository as wallet_repo

log = logging.getLogger(__name__)
# How many due executions one pass of the runner makes before the other jobs get their turn
# (catch-up of a long outage goes on at the next pass, at once).
EXECUTIONS_PER_RUN = 50
# A schedule whose execution failed unexpectedly (not a refusal: a bug, a constraint) is
# passed over for this long, by every sweep of this process, instead of being taken first at
# every pass again (its error is logged each time).
RETRY_FAILED_AFTER = 5.0
_failing: dict[uuid.UUID, float] = {}  # schedule id -> monotonic time it may be tried again


def execution_nonce(schedule_id: uuid.UUID, n: int) -> str:
    return f"sched:{schedule_id}:{n}"


def execute_next(
    session: Session,
    ctx: OperatorContext,
    *,
    schedule_id: uuid.UUID | None = None,
    skip: Collection[uuid.UUID] = (),
    claimed: list[uuid.UUID] | None = None,
) -> dict[str, Any] | None:
    """Make the next due execution (of the named schedule, or of any but those in `skip`);
    None if nothing is due (or another transaction holds it). In the caller's transaction.
    `claimed` gets the id of the schedule taken (so a caller knows which one failed)."""
    now = ctx.now()
    row = sched_repo.claim_due(session, now=now, schedule_id=schedule_id, skip=skip)
    if row is None:
        return None
    if claimed is not None:
        claimed.append(row["id"])
    n = row["executed"] + 1
    body = _execution_body(row, n)
    instruction = Instruction(
        payer=row["payer"],
        payee=row["payee"],
        amount=row["amount"],
        nonce=execution_nonce(row["id"], n),
        at=now,
        body=body,
        signature=row["signature"],  # the authority: the payer's signed schedule
        order_hash=sha256_hex(canonical_json(body)),
    )
    failure: DomainError | None = None
    order_id: uuid.UUID | None = None
    payer = wallet_repo.get_wallet(session, row["payer"])
    if payer is None or not verify_json(payer.public_key, row["body"], row["signature"]):
        failure = ScheduleAuthorityInvalid(f"schedule {row['id']}")
    else:
        outcome = pay_many(session, ctx, [instruction], now=now)[0]
        if outcome.ok:
            order_id = outcome.order_id
        else:
            failure = outcome.error
    if failure is not None:
        order_id = _record_refusal(session, ctx, instruction, failure, now=now)
    assert order_id is not None
    sched_repo.add_execution(
        session,
        schedule_id=row["id"],
        n=n,
        due_at=row["next_at"],
        now=now,
        order_id=order_id,
        failure=failure.code if failure is not None else None,
    )
    every = row["every_seconds"]
    next_at = None if n >= row["count"] else row["next_at"] + timedelta(seconds=every)
    sched_repo.advance(session, row["id"], executed=n, next_at=next_at, now=now)
    return {
        "schedule_id": str(row["id"]),
        "n": n,
        "payment_id": str(order_id),
        "outcome": "refused" if failure is not None else "paid",
        "failure": failure.code if failure is not None else None,
    }


def run_due_schedules(
    factory: Any, ctx: OperatorContext, *, schedule_id: uuid.UUID | None = None, limit: int = 50
) -> int:
    """The sweep: execute due schedules, one execution per transaction, until nothing is due
    or `limit` were made; how many were made. `factory`: runs a unit of work in a transaction
    (`JobRunner.tx`)."""
    made = 0
    now = time.monotonic()
    for key, until in list(_failing.items()):
        if until <= now:
            _failing.pop(key, None)
    skip = set(_failing)
    while made < limit:
        claimed: list[uuid.UUID] = []
        try:
            done = factory(
                lambda s, c=claimed: execute_next(
                    s, ctx, schedule_id=schedule_id, skip=skip, claimed=c
                )
            )
        except Exception as exc:
            # One schedule failing unexpectedly (its transaction rolled back: nothing paid,
            # nothing counted) must not stop the others: it is logged and passed over for
            # RETRY_FAILED_AFTER seconds, then tried again. An outage stops the sweep.
            if not claimed or database_unavailable(exc):
                raise
            log.exception("schedule %s: execution failed unexpectedly; retried later", claimed[0])
            _failing[claimed[0]] = time.monotonic() + RETRY_FAILED_AFTER
            skip.add(claimed[0])
            continue
        if done is None:
            break
        _failing.pop(uuid.UUID(done["schedule_id"]), None)
        made += 1
    return made


def sweep(runner: JobRunner) -> int:
    """The job runner's sweep (`operators.jobs.Sweep`, composed in `operators.state`): the due
    executions of every schedule, at most `EXECUTIONS_PER_RUN` per pass."""
    return run_due_schedules(runner.tx, runner.ctx, limit=EXECUTIONS_PER_RUN)


def _execution_body(row: dict[str, Any], n: int) -> dict[str, Any]:
    """What the execution's order row stores: the schedule it executes (the signed order is the
    schedule's, kept with it) and the payment's terms."""
    body: dict[str, Any] = {
        "type": "scheduled_payment",
        "schedule": str(row["id"]),
        "n": n,
        "payer": row["payer"],
        "payee": row["payee"],
        "amount": row["amount"],
        "currency": row["body"]["currency"],
    }
    if row["memo"] is not None:
        body["memo"] = row["memo"]
    return body


def _record_refusal(
    session: Session,
    ctx: OperatorContext,
    instruction: Instruction,
    failure: DomainError,
    *,
    now: datetime,
) -> uuid.UUID:
    """Keep the refused execution as a refused payment order of the payer under its nonce (as
    a refused signed payment is kept), unless that nonce holds an order already."""
    earlier = wallet_repo.find_order(session, instruction.payer, instruction.nonce)
    if earlier is not None:
        return earlier.id
    order = Order(
        id=uuid.uuid4(),
        wallet_id=instruction.payer,
        nonce=instruction.nonce,
        kind="payment",
        amount=instruction.amount,
        counterparty=instruction.payee,
        body=instruction.body,
        signature=instruction.signature,
        order_hash=instruction.order_hash,
        status="failed",
        failure=failure.code,
        entry_id=None,
        created_at=now,
        updated_at=now,
    )
    wallet_repo.add_order(session, order)
    return order.id
