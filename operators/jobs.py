"""Carries out outbox jobs: issuance, redemption, settlement and delivery, AML reports and
disclosure-log anchors.

Each job is: a short transaction that prepares (reserves tokens, moves money in transit), a call
to another party outside any transaction (idempotent on the job's reference), and a short
transaction that applies the signed answer. Failures to reach the other party are retried with
backoff; refusals are final and undo what was prepared.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from cbdc import ledger
from cbdc.db import transaction
from cbdc.disclosure_log import sign_anchor
from cbdc.http import RemoteError, RemoteUnavailable
from cbdc.outages import database_unavailable, log_failure
from cbdc.web.auth import prune_nonces
from operators import repository as repo
from operators.context import OperatorContext
from operators.errors import BadCentralBankDocument, TokensUnavailable
from operators.models import OutboxJob
from operators.settlement import delivery as settlement
from operators.settlement import net_apply, net_obligations, net_submission, netting, rtgs
from operators.settlement.rtgs_settler import RtgsSettler
from operators.vault import service as vault

log = logging.getLogger(__name__)
LEASE_SECONDS = 30
OUTAGE_PAUSE = 1.0  # seconds the worker waits after finding the database unavailable
JOB_LOCK_NS = 7001  # advisory lock namespace for "a runner is executing this outbox job"
# Refusals that mean our vault disagrees with the registration centre: never auto-refund.
VAULT_DISAGREES = {"double_spend", "token_not_owned", "unknown_token"}
# Refusals of a clearing submission that must not refund the payers: the payments may already
# be with the clearing house (a bug to look at, not a refusal of the payments).
SUBMISSION_KEPT = {"idempotency_key_reused", "duplicate_clearing_item"}


class JobRunner:
    def __init__(self, factory: sessionmaker[Session], ctx: OperatorContext) -> None:
        self.factory, self.ctx = factory, ctx
        # Jobs a database outage stopped while we held their lease: released (due at once)
        # when the database is back, instead of waiting out the lease.
        self._interrupted: set[int] = set()
        self._interrupted_lock = threading.Lock()
        # Batched gross settlement (operators/settlement/rtgs.py): settler threads, waiting
        # requests.
        self.rtgs = RtgsSettler(self)

    def tx(self, work: Any) -> Any:
        return transaction(self.factory, work)

    def run_due(self, limit: int = 20) -> int:
        self.release_interrupted()
        # This process's payments queued for batched settlement (not due yet for a worker:
        # its settler takes them at once) and whatever else is ready: settled now.
        gathered = self.rtgs.settle_ready(own=True) if self.ctx.settlement_mode == "rtgs" else 0
        jobs = self.tx(lambda s: repo.claim_jobs(s, limit=limit, lease_seconds=LEASE_SECONDS))
        # Payments queued for batched settlement: gathered all at once, not one job at a time.
        queued = [job.id for job in jobs if job.kind == rtgs.QUEUED]
        if queued:
            self.rtgs.settle_ready(include=queued)
        for job in jobs:
            if job.kind != rtgs.QUEUED:
                self._run_claimed(job)
        return gathered + len(jobs)

    def _run_claimed(self, job: OutboxJob) -> None:
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
                    s, i, delay_seconds=0, error="interrupted by a database outage"
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
                    s, limit=5, lease_seconds=LEASE_SECONDS, reference=reference
                )
            )
            for job in sorted(jobs, key=lambda j: j.id):
                self._run_claimed(job)
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
                self._later(job, 0.2, "another runner holds this job")
                return
            try:
                # A job this process created moments ago and leased to itself (rtgs.py) is
                # still pending: no other runner can have taken it before its lease ran out.
                if rtgs.freshly_leased(job):
                    current = "pending"
                else:
                    current = self.tx(lambda s: repo.job_status(s, job.id))
                if current == "pending":
                    self._dispatch(job)
            finally:
                guard.execute(
                    text("SELECT pg_advisory_unlock(:ns, :id)"), {"ns": JOB_LOCK_NS, "id": job.id}
                )

    def _dispatch(self, job: OutboxJob) -> None:
        handler = getattr(self, f"_{job.kind}")
        try:
            handler(job)
        except RemoteUnavailable as exc:
            self._later(job, min(5.0, 0.25 * 2 ** min(job.attempts, 5)), str(exc))
        except TokensUnavailable as exc:
            self._later(job, 0.05, str(exc))
        except BadCentralBankDocument as exc:
            log.error("job %s %s: %s", job.kind, job.reference, exc)
            self._fail(job, str(exc))
        except Exception as exc:  # keep the worker alive; the job is retried
            if database_unavailable(exc):
                raise  # nothing can be recorded now; run_due releases the job once it can
            log.exception("job %s %s failed unexpectedly", job.kind, job.reference)
            self._later(job, 5.0, repr(exc))

    def _later(self, job: OutboxJob, delay: float, error: str) -> None:
        self.tx(lambda s: repo.retry_job_later(s, job.id, delay_seconds=delay, error=error))

    def _fail(self, job: OutboxJob, error: str) -> None:
        self.tx(lambda s: repo.finish_job(s, job.id, status="failed", error=error))

    # ------------------------------------------------------------ kinds

    def _issuance(self, job: OutboxJob) -> None:
        try:
            response = self.ctx.central_bank.issue(
                amount=int(job.payload["amount"]), idempotency_key=job.reference
            )
        except RemoteError as exc:
            log.warning("issuance refused: %s", exc)
            self._fail(job, str(exc))
            return
        self.tx(lambda s: vault.apply_issuance(s, self.ctx, job=job, response=response))

    def _redemption(self, job: OutboxJob) -> None:
        serials, amount = self.tx(lambda s: vault.prepare_redemption(s, self.ctx, job=job))
        if not serials:
            return
        try:
            response = self.ctx.central_bank.redeem(
                serials=serials, amount=amount, idempotency_key=job.reference
            )
        except RemoteError as exc:
            code = exc.code
            self.tx(lambda s: vault.cancel_redemption(s, self.ctx, job=job, reason=code))
            return
        self.tx(lambda s: vault.apply_redemption(s, self.ctx, job=job, response=response))

    def _settle(self, job: OutboxJob) -> None:
        serials = self.tx(lambda s: settlement.prepare_settlement(s, job=job))
        try:
            response = self.ctx.central_bank.settle(
                payee_operator=job.payload["payee_operator"],
                amount=int(job.payload["amount"]),
                serials=serials,
                reference=job.reference,
            )
        except RemoteError as exc:
            code = exc.code
            if code in VAULT_DISAGREES:
                log.error("settlement %s: vault disagrees with registry: %s", job.reference, exc)
                self._fail(job, str(exc))
            else:
                self.tx(lambda s: settlement.refund_settlement(s, self.ctx, job=job, reason=code))
            return
        self.tx(lambda s: settlement.apply_settlement(s, self.ctx, job=job, response=response))
        # The deliver job (same reference) runs next: inline in run_reference, or by the worker.

    def _rtgs_batch(self, job: OutboxJob) -> None:
        """Payments queued for batched settlement: gathered with all others ready (rtgs.py)."""
        self.rtgs.settle_ready(include=[job.id])

    def _rtgs_settle(self, job: OutboxJob) -> None:
        self.rtgs.settle_job(job)

    def _rtgs_deliver(self, job: OutboxJob) -> None:
        self.rtgs.deliver_job(job)

    def _aml_report(self, job: OutboxJob) -> None:
        try:
            self.ctx.central_bank.report_alert(job.payload)
        except RemoteError as exc:
            log.error("AML report %s refused: %s", job.reference, exc)
            self._fail(job, str(exc))
            return
        self.tx(lambda s: repo.finish_job(s, job.id))

    def _disclosure_anchor(self, job: OutboxJob) -> None:
        """Register the disclosure log's head after entry `seq` with the central bank, signed
        with this operator's key. Idempotent there: the same (seq, hash) again is accepted."""
        seq, head = int(job.payload["seq"]), str(job.payload["hash"])
        signature = sign_anchor(self.ctx.key, self.ctx.code, seq, head)
        try:
            self.ctx.central_bank.register_disclosure_anchor(
                seq=seq, head=head, signature=signature
            )
        except RemoteError as exc:
            if exc.status in (401, 403):  # e.g. while suspended: the anchor is still owed
                self._later(job, min(60.0, 0.5 * 2 ** min(job.attempts, 7)), str(exc))
                return
            # 409: another head is anchored for this seq (the log was rewritten, or the
            # central bank's record was): the central bank flags it, the audit reports it.
            log.error("disclosure anchor #%s refused: %s", seq, exc)
            self._fail(job, str(exc))
            return
        self.tx(lambda s: repo.finish_job(s, job.id))

    def _deliver(self, job: OutboxJob) -> None:
        peer = self.ctx.peers.client(job.payload["payee_operator"])
        if peer is None:
            raise RemoteUnavailable(f"no address for operator {job.payload['payee_operator']}")
        try:
            answer = peer.request("POST", "/v1/interop/settlements", job.payload["body"])
        except RemoteError as exc:
            if exc.code in ("settlement_rejected", "validation_error"):
                log.error("delivery %s refused: %s", job.reference, exc)
                self._fail(job, str(exc))
            else:  # e.g. 401 while the peer's directory is stale: not about the settlement
                self._later(job, min(5.0, 0.25 * 2 ** min(job.attempts, 7)), str(exc))
            return
        self.tx(lambda s: settlement.mark_delivered(s, job=job, outcome=answer["outcome"]))

    # ------------------------------------------------------------ deferred net settlement

    def _net_submit(self, job: OutboxJob) -> None:
        body = self.tx(lambda s: net_submission.submission_body(s, job=job))
        if body is None:
            return
        try:
            answer = self.ctx.central_bank.submit_for_clearing(body)
        except RemoteError as exc:
            code = exc.code
            if code in SUBMISSION_KEPT:
                log.error("clearing submission %s: %s", job.reference, exc)
                self._fail(job, str(exc))
            else:
                self.tx(
                    lambda s: net_submission.refund_submission(s, self.ctx, job=job, reason=code)
                )
            return
        self.tx(lambda s: net_submission.submission_accepted(s, job=job, body=body, answer=answer))

    def _net_pay(self, job: OutboxJob) -> None:
        try:
            serials = self.tx(lambda s: net_obligations.prepare_payment(s, job=job))
        except TokensUnavailable:
            # A liquidity shortfall: obtain issuance now (recorded), then try once more.
            issuance = self.tx(lambda s: net_obligations.record_shortfall(s, self.ctx, job=job))
            if issuance is not None:
                self.run_reference(issuance, patience=0)
            serials = self.tx(lambda s: net_obligations.prepare_payment(s, job=job))
        if serials is None:
            return
        oid = job.payload["obligation_id"]
        try:
            answer = self.ctx.central_bank.pay_obligation(oid, serials)
        except RemoteError as exc:
            if exc.code in VAULT_DISAGREES:
                log.error("net settlement %s: vault disagrees with registry: %s", oid, exc)
                self._fail(job, str(exc))
            elif exc.code == "obligation_settled":  # paid under another key: nothing to pay
                error = str(exc)
                self.tx(lambda s: net_obligations.release_payment(s, job=job, reason=error))
            else:  # an obligation stands: keep trying (e.g. while we are suspended)
                self._later(job, min(30.0, 0.5 * 2 ** min(job.attempts, 6)), str(exc))
            return
        self.tx(lambda s: net_obligations.payment_made(s, self.ctx, job=job, answer=answer))
        # the `net_apply` job (same reference) runs next: in run_reference, or by the worker

    def _net_apply(self, job: OutboxJob) -> None:
        oid = job.payload["obligation_id"]
        if not self.tx(lambda s: net_apply.applied(s, oid)):
            detail, items = net_apply.fetch_settled_pair(self.ctx, oid)
            if detail["status"] != "settled":
                self._later(job, 1.0, "waiting for the debtor to pay")
                return
            self.tx(
                lambda s: net_apply.apply_pair(s, self.ctx, job=job, detail=detail, items=items)
            )
        returned = self.tx(lambda s: net_apply.returned_references(s, oid))
        try:
            self.ctx.central_bank.acknowledge_obligation(oid, returned)
        except RemoteError as exc:
            log.error("net settlement %s: acknowledgement refused: %s", oid, exc)
            self._fail(job, str(exc))
            return
        self.tx(lambda s: repo.finish_job(s, job.id))


class OutboxWorker(threading.Thread):
    """Background loop: runs due jobs and keeps the vault float between its water marks."""

    def __init__(
        self,
        runner: JobRunner,
        *,
        interval: float = 0.2,
        water_mark_every: float = 2.0,
        clearing_poll_every: float = 0.5,
        clearing_idle_every: float = 10.0,
    ) -> None:
        super().__init__(name=f"outbox-{runner.ctx.code}", daemon=True)
        self.runner, self.interval, self.water_mark_every = runner, interval, water_mark_every
        # Net settlement: submissions each tick and the clearing house polled this often while
        # there is net work; without any, polled now and then all the same (a peer in mode
        # "net" may owe us, or be owed, a settled pair).
        self.clearing_poll_every = clearing_poll_every
        self.clearing_idle_every = clearing_idle_every
        self.stopping = threading.Event()
        self.wake = threading.Event()

    def check_water_marks(self) -> None:
        ctx = self.runner.ctx

        def work(s: Session) -> None:
            account = ctx.account("vault_float")
            balance = ledger.lock_accounts(s, [account])[account]
            vault.check_water_marks(s, ctx, float_balance=balance)

        self.runner.tx(work)

    def run(self) -> None:
        last_check = 0.0
        last_prune = time.monotonic()
        last_poll = 0.0
        while not self.stopping.is_set():
            try:
                now = time.monotonic()
                if now - last_check >= self.water_mark_every:
                    self.check_water_marks()
                    last_check = now
                since_poll = now - last_poll
                if netting.is_active(self.runner):
                    poll = since_poll >= self.clearing_poll_every
                    netting.sync(self.runner, poll=poll)
                else:
                    poll = since_poll >= self.clearing_idle_every
                    if poll:
                        netting.sync(self.runner)
                if poll:
                    last_poll = now
                if now - last_prune >= 60:
                    self.runner.tx(prune_nonces)
                    last_prune = now
                while self.runner.run_due() and not self.stopping.is_set():
                    pass
            except Exception as exc:  # never let the worker die; everything is retried
                if log_failure(log, "outbox worker", exc):
                    self.stopping.wait(OUTAGE_PAUSE)  # the database is down: do not hammer it
            self.wake.wait(self.interval)
            self.wake.clear()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
