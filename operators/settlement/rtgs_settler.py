"""The settler of batched gross settlement (see `operators.settlement.rtgs`): threads of the
operator's process that gather every ready cross-operator payment per peer, settle them at the
central bank in one call and deliver them to the payee's operator in one call, and tell the requests
waiting for those payments how they ended (`wait_for`), so `POST /v1/payments` can answer
`delivered` without a database read or a polling loop.

Nothing waits on a timer: a payment's request wakes a settler thread (`kick`); while one batch
is at the central bank or the peer, the next payments pile up and the other thread takes them
all, so the batch size follows the load. The outbox worker runs the same steps for whatever the
settler could not finish (an outage, a crash): the jobs, their references and their advisory
locks are the same (`JobRunner.run`), so a step never runs twice at once and never applies twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc.http import RemoteError, RemoteUnavailable
from cbdc.sqlarrays import any_array
from operators.jobs import freshly_leased
from operators.models import OutboxJob
from operators.settlement import rtgs

if TYPE_CHECKING:
    from operators.jobs import JobRunner

log = logging.getLogger(__name__)
IDLE_SECONDS = 5.0  # a settler thread ends after this long without work (started again on kick)
RECENT = 20_000  # outcomes kept for requests that start waiting after the settler finished
# An order's outcome: (status, failure); None: not final now (left to the outbox).
Outcome = tuple[str, str | None] | None


class RtgsSettler:
    kind = rtgs.QUEUED  # the runner hands its claimed jobs of this kind here, gathered

    def __init__(self, runner: JobRunner, *, threads: int | None = None) -> None:
        self.runner = runner
        # Batches in flight at once per process (each thread: settle, then deliver). One by
        # default: the waiting payments then form one batch, whose central bank and peer calls
        # cost the same for 5 or 30 items (2 threads measured 15-25% slower, more CPU per payment).
        self.threads_wanted = threads or int(os.environ.get("CBDC_RTGS_THREADS", "1"))
        self._cond = threading.Condition()
        self._dirty = False
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._waiters: dict[str, list[Future[Outcome]]] = {}
        self._recent: OrderedDict[str, Outcome] = OrderedDict()
        self._executor: ThreadPoolExecutor | None = None  # deliveries started early

    # ------------------------------------------------------------ waiting requests

    def wait_for(self, order_id: str) -> Future[Outcome]:
        """A future for the outcome of payment `order_id` (settled by this process)."""
        future: Future[Outcome] = Future()
        with self._lock:
            if order_id in self._recent:
                future.set_result(self._recent[order_id])
            else:
                self._waiters.setdefault(order_id, []).append(future)
        return future

    def forget(self, order_id: str, future: Future[Outcome]) -> None:
        with self._lock:
            waiting = self._waiters.get(order_id, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._waiters.pop(order_id, None)

    def resolve(self, outcomes: dict[str, Outcome], *, final: bool = True) -> None:
        """Record outcomes and answer the requests waiting for them. With `final` False only
        orders without an outcome yet are recorded (a fallback after a step did not finish)."""
        answered: list[tuple[Future[Outcome], Outcome]] = []
        with self._lock:
            for order_id, outcome in outcomes.items():
                known = order_id in self._recent
                if known and (not final or outcome is None):
                    continue
                self._recent[order_id] = outcome
                self._recent.move_to_end(order_id)
                for future in self._waiters.pop(order_id, []):
                    answered.append((future, outcome))
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        for future, outcome in answered:
            with contextlib.suppress(InvalidStateError):  # the request gave up waiting
                future.set_result(outcome)

    # ------------------------------------------------------------ threads

    def kick(self) -> None:
        """New payments are queued: settle them now."""
        with self._cond:
            if self._stopping:
                return
            self._dirty = True
            if len(self._threads) < self.threads_wanted:
                thread = threading.Thread(target=self._loop, name="rtgs-settler", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=10)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def _loop(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                while not self._dirty and not self._stopping:
                    if not self._cond.wait(timeout=IDLE_SECONDS) and not self._dirty:
                        self._threads.remove(me)
                        return
                if self._stopping:
                    self._threads.remove(me)
                    return
                self._dirty = False
            try:
                while self.settle_ready(own=True):
                    pass
            except Exception:  # never let the settler die; the outbox finishes the work
                log.exception("rtgs settler round failed")

    def settle_ready(self, include: list[int] | None = None, *, own: bool = False) -> int:
        """One round: gather the ready payments into batches and run them. Returns how many
        batches it ran."""
        now = self.runner.ctx.now()
        jobs = self.runner.tx(lambda s: rtgs.gather(s, now=now, include=include or [], own=own))
        for job in jobs:
            self.run_settle(job)
        return len(jobs)

    def run_settle(self, job: OutboxJob) -> None:
        """Run a settle job through the runner (advisory lock, retries); then answer every
        request of its payments still waiting: not final now means `pending_settlement`."""
        try:
            self.runner.run_claimed(job)  # a database outage marks it for release
        finally:
            pending: dict[str, Outcome] = {i["order_id"]: None for i in job.payload["items"]}
            self.resolve(pending, final=False)

    # ------------------------------------------------------------ job kinds (JobRunner)

    def settle_job(self, job: OutboxJob) -> None:
        """`rtgs_settle`: the central bank call and its application, then the delivery.

        The delivery starts as soon as the central bank's answer has verified, while the
        answer is applied here (the settlements are final at the central bank: the payee's
        operator may credit them now; it verifies every receipt and token itself and credits a
        settlement once, so the `rtgs_deliver` job, which stays the record and the retry,
        may deliver them again). The requests are answered only once both are recorded."""
        early: list[Future[dict[str, Any]]] = []

        def deliver_now(items: list[dict[str, Any]]) -> None:
            with contextlib.suppress(RuntimeError):  # stopping: the deliver job does it
                early.append(self._pool().submit(self._deliver_call, job.payload, items))

        outcomes, deliver = rtgs.settle(self.runner, job, early=deliver_now)
        self.resolve({k: v for k, v in outcomes.items() if v is not None and v[0] == "failed"})
        answer: dict[str, Any] | None = None
        if early:
            try:
                answer = early[0].result()
            except RemoteUnavailable as exc:  # the peer is away: the deliver job retries later
                if deliver is not None:
                    delay = min(5.0, 0.25 * 2 ** min(deliver.attempts, 5))
                    self.runner.later(deliver, delay, str(exc))
                    deliver = None
            except Exception:  # e.g. a refusal: the deliver job runs now and records it
                log.debug("early delivery of %s failed", job.reference, exc_info=True)
        if deliver is not None and (answer is None or not self._record_delivery(deliver, answer)):
            self.runner.run_claimed(deliver)
        # Settled but not (yet) delivered: the answer says `settled`.
        self.resolve({k: v for k, v in outcomes.items() if v and v[0] == "settled"}, final=False)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.threads_wanted, thread_name_prefix="rtgs-delivery"
                )
            return self._executor

    def _deliver_call(self, payload: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
        """The call to the payee's operator for `items` (delivery items, `rtgs.delivery_item`)."""
        peer = self.runner.ctx.peers.client(payload["payee_operator"])
        if peer is None:
            raise RemoteUnavailable(f"no address for operator {payload['payee_operator']}")
        return peer.request(  # type: ignore[no-any-return]
            "POST", "/v1/interop/settlements/batch", {"items": [i["body"] for i in items]}
        )

    def _record_delivery(self, job: OutboxJob, answer: dict[str, Any]) -> bool:
        """Record an answer of the payee's operator to the deliver job `job` (made by this
        runner moments ago: nobody else runs it yet); answer the requests. False if the answer
        does not cover the job's items (the job then runs as usual)."""
        answered = {a.get("settlement_id") for a in answer.get("items", [])}
        if not freshly_leased(job, self.runner.ctx.now()) or any(
            i["body"]["receipt"]["document"]["settlement_id"] not in answered
            for i in job.payload["items"]
        ):
            return False
        outcomes, credited, rejected = delivery_outcomes(job, answer)
        if self.runner.tx(
            lambda s: mark_delivered(
                s, job=job, credited=credited, rejected=rejected, now=self.runner.ctx.now()
            )
        ):
            self.resolve(outcomes)
        return True

    def deliver_job(self, job: OutboxJob) -> None:
        """`rtgs_deliver`: one call to the payee's operator for the whole batch."""
        try:
            answer = self._deliver_call(job.payload, job.payload["items"])
        except RemoteError as exc:
            error = str(exc)
            if exc.code in ("settlement_rejected", "validation_error"):
                log.error("delivery %s refused: %s", job.reference, exc)
                self.runner.fail(job, error)
            else:  # e.g. 401 while the peer's directory is stale: not about the settlement
                self.runner.later(job, min(5.0, 0.25 * 2 ** min(job.attempts, 7)), error)
            return
        outcomes, credited, rejected = delivery_outcomes(job, answer)
        if self.runner.tx(
            lambda s: mark_delivered(
                s, job=job, credited=credited, rejected=rejected, now=self.runner.ctx.now()
            )
        ):  # recorded before anyone is answered: a client reading its payment sees it
            self.resolve(outcomes)


def delivery_outcomes(
    job: OutboxJob, answer: dict[str, Any]
) -> tuple[dict[str, Outcome], list[uuid.UUID], list[str]]:
    """The payee's operator's answer per item: (outcomes, credited orders, rejected orders)."""
    by_settlement = {a.get("settlement_id"): a for a in answer.get("items", [])}
    credited: list[uuid.UUID] = []
    rejected: list[str] = []
    outcomes: dict[str, Outcome] = {}
    for item in job.payload["items"]:
        settlement_id = item["body"]["receipt"]["document"]["settlement_id"]
        outcome = (by_settlement.get(settlement_id) or {}).get("outcome")
        if outcome == "credited":
            credited.append(uuid.UUID(item["order_id"]))
            outcomes[item["order_id"]] = ("delivered", None)
        else:
            if outcome == "rejected":
                rejected.append(item["order_id"])
            outcomes[item["order_id"]] = ("settled", None)
    return outcomes, credited, rejected


def mark_delivered(
    session: Session,
    *,
    job: OutboxJob,
    credited: list[uuid.UUID],
    rejected: list[str],
    now: datetime,
) -> bool:
    """Credited orders become `delivered` and the job finishes, once (only while the job is
    still pending: the UPDATE of its row waits for and re-checks any concurrent runner), in
    one statement. Returns whether this call recorded it."""
    if rejected:
        log.error(
            "delivery %s: payments refused by the payee's operator: %s", job.reference, rejected
        )
    done = session.execute(
        text(
            "WITH j AS (UPDATE outbox SET status = :status, done_at = :now, last_error = :e "
            "WHERE id = :id AND status = 'pending' RETURNING id), "
            "o AS (UPDATE orders SET status = 'delivered', updated_at = :now "
            "WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'settled' "
            "AND EXISTS (SELECT 1 FROM j) RETURNING 1) "
            "SELECT count(*) FROM j"
        ),
        {
            "id": job.id,
            "status": "failed" if rejected else "done",
            "e": f"refused: {', '.join(rejected)}"[:2000] if rejected else None,
            "ids": any_array(sorted(credited)),
            "now": now,
        },
    ).scalar_one()
    return bool(done)
