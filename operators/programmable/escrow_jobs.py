"""The escrow deadline sweep, run by the operator's outbox worker with its housekeeping
(`operators.state`): every open escrow whose deadline has passed (by the context's clock) gives
what remains back to the payer, exactly once. The state is in the database: the escrow row is
taken FOR UPDATE SKIP LOCKED and checked open again, so two workers (or a worker and a
restarted one) never refund one twice, and a release holding the row is either before the
deadline (and done first) or refused with `escrow_expired`."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session

from cbdc.outages import database_unavailable
from operators.jobs import JobRunner
from operators.programmable import escrow_repository as erepo
from operators.programmable.escrows import give_back

log = logging.getLogger(__name__)
BATCH = 100


def expire_due(runner: JobRunner, *, batch: int = BATCH) -> int:
    """Refund the escrows past their deadline, `batch` per transaction; how many. One whose
    refund fails unexpectedly rolls its batch back; the batch is done again without it (it is
    logged and passed over until the next pass), so it never holds the others back."""
    ctx = runner.ctx
    total = 0
    skip: set[uuid.UUID] = set()
    while True:
        taking: list[uuid.UUID] = []

        def work(s: Session, taking: list[uuid.UUID] = taking) -> int:
            now = ctx.now()
            due = erepo.due(s, now=now, limit=batch, skip=skip)
            for escrow in due:
                taking.append(escrow["id"])
                give_back(s, ctx, escrow, kind="expiry", now=now)
            return len(due)

        try:
            done: int = runner.tx(work)
        except Exception as exc:
            if not taking or database_unavailable(exc):
                raise
            log.exception("escrow %s: refund at the deadline failed; retried later", taking[-1])
            skip.add(taking[-1])
            continue
        total += done
        if done < batch:
            break
    if total:
        log.info("escrow: %d past their deadline refunded to their payers", total)
    return total
