"""The programmes' expiry sweep, run by the operator's job runner with the other sweeps
(`operators.state.SWEEPS`): every active programme past `expires_at` (the context's clock)
returns each unspent voucher balance to the issuer wallet and becomes `expired`, exactly once.
The state is in the database: the programme row is taken FOR UPDATE SKIP LOCKED (two runners,
or a runner and a restarted one, never take the same one; one a payment holds is taken at the
next pass) and an expiry event is unique per (programme, holder)."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session

from cbdc.outages import database_unavailable
from operators.jobs import JobRunner
from operators.programmable import voucher_repository as vrepo
from operators.programmable.programmes import expire

log = logging.getLogger(__name__)


def expire_due(runner: JobRunner) -> int:
    """Expire the programmes past their expiry, one per transaction (a programme may have many
    holders); how many. One whose expiry fails unexpectedly is rolled back, logged and passed
    over until the next pass, so it never holds the others back."""
    ctx = runner.ctx
    total = 0
    skip: set[uuid.UUID] = set()
    while True:
        taking: list[uuid.UUID] = []

        def work(s: Session, taking: list[uuid.UUID] = taking) -> int:
            now = ctx.now()
            due = [p for p in vrepo.due(s, now=now, limit=len(skip) + 1) if p["id"] not in skip]
            for programme in due[:1]:
                taking.append(programme["id"])
                expire(s, ctx, programme, now)
            return len(due[:1])

        try:
            done: int = runner.tx(work)
        except Exception as exc:
            if not taking or database_unavailable(exc):
                raise
            log.exception("programme %s: expiry failed; retried at the next pass", taking[-1])
            skip.add(taking[-1])
            continue
        if not done:
            break
        total += done
    if total:
        log.info("vouchers: %d programmes expired, unspent value back to their issuers", total)
    return total
