"""The outbox runner and worker: carry out the jobs the areas queue (issuance and redemption:
`operators.vault.jobs`; settlement, delivery, RTGS batches, net settlement:
`operators.settlement.jobs`; AML reports and disclosure-log anchors: `operators.compliance.jobs`).

Each area registers its handlers in a table (`JOBS`, job kind -> handler); `operators.state`
composes the tables and hands them to the runner, which dispatches a claimed job by its kind. A
job of a kind no area registered fails at once, with that said in its error.

Each job is: a short transaction that prepares (reserves tokens, moves money in transit), a call
to another party outside any transaction (idempotent on the job's reference), and a short
transaction that applies the signed answer. Failures to reach the other party are retried with
backoff; refusals are final and undo what was prepared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from cbdc.db import transaction
from cbdc.http import RemoteUnavailable
from cbdc.outages import database_unavailable, log_failure
from cbdc.web.auth import prune_nonces
from operators import repository as repo
from operators.context import OperatorContext
from operators.errors import BadCentralBankDocument, TokensUnavailable
from operators.models import OutboxJob

log = logging.getLogger(__name__)
LEASE_SECONDS = 30
OUTAGE_PAUSE = 1.0  # seconds the worker waits after finding the database unavailable
JOB_LOCK_NS = 7001  # advisory lock namespace for "a runner is executing this outbox job"

JobHandler = Callable[["JobRunner", OutboxJob], None]
"""Carries out one claimed job of its kind: `handler(runner, job)`. It finishes the job itself
(or has the runner retry it later or fail it: `JobRunner.later`, `JobRunner.fail`); what it
raises is handled by the runner (`JobRunner.dispatch`)."""


Sweep = Callable[["JobRunner"], int]
"""Work an area finds due in its own tables rather than in the outbox (scheduled payments:
`operators.programmable.schedules_run.sweep`), run at each `run_due` (the worker's: at most
every `OutboxWorker.sweep_every` seconds): it locks what it takes
(FOR UPDATE SKIP LOCKED), so runners never take the same thing; it returns how much it did."""


class Gatherer(Protocol):
    """Runs the jobs of one kind gathered, many at a time, instead of one by one: batched gross
    settlement (`operators.settlement.rtgs_settler.RtgsSettler`), composed in `operators.state`."""

    kind: str

    def settle_ready(self, include: list[int] | None = None, *, own: bool = False) -> int: ...

    def stop(self) -> None: ...


def job_table(*tables: Mapping[str, JobHandler]) -> dict[str, JobHandler]:
    """The areas' handler tables as one; a kind registered twice is a programming error."""
    out: dict[str, JobHandler] = {}
    for table in tables:
        for kind, handler in table.items():
            if kind in out:
                raise ValueError(f"job kind {kind!r} is registered twice")
            out[kind] = handler
    return out


def freshly_leased(job: OutboxJob, now: datetime) -> bool:
    """True for a job enqueued already leased to this process (`rtgs._enqueue_leased` sets
    `fresh_until`) whose lease is surely still running: no other runner can have claimed it
    (claims take only due jobs), so it is still pending and the runner need not read its
    status. (Its advisory lock is still taken: it keeps a late runner out if this one outlives
    the lease.)"""
    fresh_until: datetime | None = getattr(job, "fresh_until", None)
    return fresh_until is not None and now < fresh_until


class JobRunner:
    def __init__(
        self,
        factory: sessionmaker[Session],
        ctx: OperatorContext,
        handlers: Mapping[str, JobHandler],
        *,
        gatherer: Callable[[JobRunner], Gatherer],
        sweeps: Sequence[Sweep] = (),
    ) -> None:
        self.factory, self.ctx = factory, ctx
        self.handlers = dict(handlers)
        self.sweeps = tuple(sweeps)
        # Jobs a database outage stopped while we held their lease: released (due at once)
        # when the database is back, instead of waiting out the lease.
        self._interrupted: set[int] = set()
        self._interrupted_lock = threading.Lock()
        # Batched gross settlement (operators/settlement/rtgs.py): settler threads, waiting
        # requests.
        self.rtgs: Gatherer = gatherer(self)

    def tx(self, work: Any) -> Any:
        return transaction(self.factory, work)

    def run_due(self, limit: int = 20, *, sweep: bool = True) -> int:
        """Run the due jobs (at most `limit`) and, with `sweep`, the sweeps; how much ran."""
        self.release_interrupted()
        # This process's payments queued for batched settlement (not due yet for a worker:
        # its settler takes them at once) and whatever else is ready: settled now.
        gathered = self.rtgs.settle_ready(own=True) if self.ctx.settlement_mode == "rtgs" else 0
        jobs = self.tx(
            lambda s: repo.claim_jobs(
                s, now=self.ctx.now(), limit=limit, lease_seconds=LEASE_SECONDS
            )
        )
        # Payments queued for batched settlement: gathered all at once, not one job at a time.
        queued = [job.id for job in jobs if job.kind == self.rtgs.kind]
        if queued:
            self.rtgs.settle_ready(include=queued)
        for job in jobs:
            if job.kind != self.rtgs.kind:
                self.run_claimed(job)
        swept = sum(self.run_sweep(each) for each in self.sweeps) if sweep else 0
        return gathered + len(jobs) + swept

    def run_sweep(self, sweep: Sweep) -> int:
        """Run one sweep; what it raises unexpectedly is logged and the others still run (a
        failing sweep does not stop the escrow deadlines, or the schedules, of every pass).
        A database outage is raised: nothing can run now."""
        try:
            return sweep(self)
        except Exception as exc:
            if database_unavailable(exc):
                raise
            log.exception("sweep %s failed unexpectedly", getattr(sweep, "__qualname__", sweep))
            return 0

    def run_claimed(self, job: OutboxJob) -> None:
        """Run a job this runner claimed; one a database outage stopped is released (due
        again) once the database is back (`release_interrupted`)."""
        try:
            self.run(job)
        except Exception as exc:
            if database_unavailable(exc):
                with self._interrupted_lock:
                    self._interrupted.add(job.id)
            raise

    def release_interrupted(self) -> None:
        """Make the jobs an outage interrupted due again (idempotent jobs: running one again
        is safe; the advisory lock in `run` keeps two runners apart)."""
        with self._interrupted_lock:
            ids = sorted(self._interrupted)
        for job_id in ids:
            self.tx(
                lambda s, i=job_id: repo.retry_job_later(
                    s,
                    i,
                    now=self.ctx.now(),
                    delay_seconds=0,
                    error="interrupted by a database outage",
                )
            )
            with self._interrupted_lock:
                self._interrupted.discard(job_id)

    def run_reference(self, reference: str, *, patience: float = 1.0) -> bool:
        """Run the named job now if it is due (an issuance the caller waits for, a net
        settlement step). A job that
        only waits for vault tokens other settlements hold is retried here for up to
        `patience` seconds before it is left to the background worker."""
        deadline = time.monotonic() + patience
        ran = False
        for _ in range(100):  # bounded: each pass either runs a job or waits 20 ms
            jobs = self.tx(
                lambda s: repo.claim_jobs(
                    s,
                    now=self.ctx.now(),
                    limit=5,
                    lease_seconds=LEASE_SECONDS,
                    reference=reference,
                )
            )
            for job in sorted(jobs, key=lambda j: j.id):
                self.run_claimed(job)
            ran = ran or bool(jobs)
            if jobs:
                continue  # a follow-up job of the same reference (deliver after settle)
            if time.monotonic() > deadline or not self._waiting_for_tokens(reference):
                break
            time.sleep(0.02)
        return ran

    def _waiting_for_tokens(self, reference: str) -> bool:
        def check(s: Session) -> bool:
            job = repo.job_by_reference(s, reference)
            return bool(
                job is not None
                and job.status == "pending"
                and (job.last_error or "").startswith("only ")
            )

        return bool(self.tx(check))

    def run(self, job: OutboxJob) -> None:
        """Run one claimed job, unless another runner (a worker whose lease expired, another
        process) is running it right now, or it finished meanwhile. The job's advisory lock is
        held on a connection of its own for the whole run (released if the process dies), so
        two runners never overlap, and a late runner sees the job's final status and stops:
        a settlement refunded by one runner can never be settled by another."""
        engine = self.factory.kw["bind"]
        # A Connection, not a Session: a Session hands its connection back to the pool at
        # commit, and the unlock must run on the very connection that holds the lock.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as guard:
            got = guard.execute(
                text("SELECT pg_try_advisory_lock(:ns, :id)"), {"ns": JOB_LOCK_NS, "id": job.id}
            ).scalar()
            if not got:  # another runner has it: look again soon (it may be a dead lease)
                self.later(job, 0.2, "another runner holds this job")
                return
            try:
                # A job this process created moments ago and leased to itself (rtgs.py) is
                # still pending: no other runner can have taken it before its lease ran out.
                if freshly_leased(job, self.ctx.now()):
                    current = "pending"
                else:
                    current = self.tx(lambda s: repo.job_status(s, job.id))
                if current == "pending":
                    self.dispatch(job)
            finally:
                guard.execute(
                    text("SELECT pg_advisory_unlock(:ns, :id)"), {"ns": JOB_LOCK_NS, "id": job.id}
                )

    def dispatch(self, job: OutboxJob) -> None:
        """Hand the job to the handler registered for its kind; what the handler raises is
        handled here: an unreachable party or tokens held by others mean later, a document
        that does not verify fails the job, anything else is retried (the worker lives on)."""
        handler = self.handlers.get(job.kind)
        if handler is None:
            log.error("job %s %s: no handler is registered for this kind", job.kind, job.reference)
            self.fail(job, f"unknown job kind {job.kind!r}: no area registers a handler for it")
            return
        try:
            handler(self, job)
        except RemoteUnavailable as exc:
            self.later(job, min(5.0, 0.25 * 2 ** min(job.attempts, 5)), str(exc))
        except TokensUnavailable as exc:
            self.later(job, 0.05, str(exc))
        except BadCentralBankDocument as exc:
            log.error("job %s %s: %s", job.kind, job.reference, exc)
            self.fail(job, str(exc))
        except Exception as exc:  # keep the worker alive; the job is retried
            if database_unavailable(exc):
                raise  # nothing can be recorded now; run_due releases the job once it can
            log.exception("job %s %s failed unexpectedly", job.kind, job.reference)
            self.later(job, 5.0, repr(exc))

    def later(self, job: OutboxJob, delay: float, error: str) -> None:
        """Leave the job pending, due again in `delay` seconds, with `error` as its last error."""
        self.tx(
            lambda s: repo.retry_job_later(
                s, job.id, now=self.ctx.now(), delay_seconds=delay, error=error
            )
        )

    def fail(self, job: OutboxJob, error: str) -> None:
        """Finish the job as failed (final: it is not retried)."""
        self.tx(
            lambda s: repo.finish_job(s, job.id, now=self.ctx.now(), status="failed", error=error)
        )

    def finish(self, job: OutboxJob) -> None:
        """Finish the job as done."""
        self.tx(lambda s: repo.finish_job(s, job.id, now=self.ctx.now()))


class Clearing(Protocol):
    """Deferred net settlement as the worker drives it (`operators.settlement.netting`)."""

    def is_active(self, target: JobRunner) -> bool: ...

    def sync(self, target: JobRunner, *, poll: bool = True) -> Any: ...


class OutboxWorker(threading.Thread):
    """Background loop: runs due jobs and keeps the vault float between its water marks."""

    def __init__(
        self,
        runner: JobRunner,
        *,
        water_marks: Callable[[JobRunner], None],
        clearing: Clearing,
        interval: float = 0.2,
        water_mark_every: float = 2.0,
        clearing_poll_every: float = 0.5,
        clearing_idle_every: float = 10.0,
        sweep_every: float = 1.0,
    ) -> None:
        super().__init__(name=f"outbox-{runner.ctx.code}", daemon=True)
        self.runner, self.interval, self.water_mark_every = runner, interval, water_mark_every
        self.water_marks, self.clearing = water_marks, clearing
        # Net settlement: submissions each tick and the clearing house polled this often while
        # there is net work; without any, polled now and then all the same (a peer in mode
        # "net" may owe us, or be owed, a settled pair).
        self.clearing_poll_every = clearing_poll_every
        self.clearing_idle_every = clearing_idle_every
        # The sweeps (schedules, escrow deadlines, voucher expiry) open transactions of their
        # own: run this often, not at every tick of an idle worker.
        self.sweep_every = sweep_every
        self.stopping = threading.Event()
        self.wake = threading.Event()

    def check_water_marks(self) -> None:
        self.water_marks(self.runner)

    def run(self) -> None:
        last_check = 0.0
        last_prune = time.monotonic()
        last_poll = 0.0
        last_sweep = 0.0
        while not self.stopping.is_set():
            try:
                now = time.monotonic()
                if now - last_check >= self.water_mark_every:
                    self.check_water_marks()
                    last_check = now
                since_poll = now - last_poll
                if self.clearing.is_active(self.runner):
                    poll = since_poll >= self.clearing_poll_every
                    self.clearing.sync(self.runner, poll=poll)
                else:
                    poll = since_poll >= self.clearing_idle_every
                    if poll:
                        self.clearing.sync(self.runner)
                if poll:
                    last_poll = now
                if now - last_prune >= 60:
                    self.runner.tx(prune_nonces)
                    last_prune = now
                sweep = now - last_sweep >= self.sweep_every
                if sweep:
                    last_sweep = now
                while self.runner.run_due(sweep=sweep) and not self.stopping.is_set():
                    pass
            except Exception as exc:  # never let the worker die; everything is retried
                if log_failure(log, "outbox worker", exc):
                    self.stopping.wait(OUTAGE_PAUSE)  # the database is down: do not hammer it
            self.wake.wait(self.interval)
            self.wake.clear()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
