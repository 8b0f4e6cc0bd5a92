"""Micro-batching of single signed payments: concurrent `POST /v1/payments` requests share one
database transaction.

A request hands its signed order to the batcher and waits. Batcher threads each take whatever
orders are waiting (up to `max_batch`), run them through the batch payment path
(`signed_batch.judge_signed`: the same checks and problem codes as a single payment, accounts
locked once in ascending id order) in one transaction, commit once, and answer every request
with its own receipt or refusal. Nothing waits on a timer: orders pile up while the previous
transaction commits, so the batch size follows the load (1 when idle, dozens under load) and
one durable commit (one fsync) serves them all.

If a batch fails as a whole (not a refusal of one order), each of its orders is retried alone
in its own transaction, so one bad order cannot sink the others. If it fails because the
database is unavailable, retrying alone cannot help: every order of the batch is answered at
once with `DatabaseUnavailable` (503, Retry-After; the client sends the same signed order again
and its nonce makes it one payment). Whatever happens, no request is left waiting: a batcher
thread answers every order it took, and `stop()` answers those still queued.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

from sqlalchemy.orm import Session

from cbdc.errors import DatabaseUnavailable, DomainError, ServiceUnavailable
from cbdc.outages import database_unavailable
from operators.context import OperatorContext
from operators.payments import signed_batch

log = logging.getLogger(__name__)
IDLE_SECONDS = 5.0
STOP_SECONDS = 10.0  # how long `stop()` waits for each thread to finish its batch
Result = dict[str, Any] | DomainError
Item = tuple[dict[str, Any], str, "Future[Result]"]
RunInTransaction = Callable[[Callable[[Session], Any]], Any]


class PaymentBatcher:
    def __init__(
        self,
        run: RunInTransaction,
        ctx: OperatorContext,
        *,
        threads: int = 2,
        max_batch: int = 256,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._run = run
        self._ctx = ctx
        self._threads_wanted = threads
        self.max_batch = max_batch
        self._on_batch = on_batch
        self._queue: deque[Item] = deque()
        self._ready = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def submit(self, order: dict[str, Any], signature: str) -> Future[Result]:
        """Queue a signed payment order; the future gets its receipt or its refusal."""
        future: Future[Result] = Future()
        with self._ready:
            if self._stopping:
                raise RuntimeError("the payment batcher is stopped")
            if len(self._threads) < self._threads_wanted:
                self._start(self._threads_wanted - len(self._threads))
            self._queue.append((order, signature, future))
            self._ready.notify()
        return future

    def _start(self, n: int) -> None:
        for _ in range(n):
            thread = threading.Thread(target=self._loop, name="payments", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=STOP_SECONDS)
        with self._ready:  # orders no thread took (threads that did not end in time)
            left = list(self._queue)
            self._queue.clear()
        for _, _, future in left:
            if not future.done():
                future.set_exception(ServiceUnavailable("the service is stopping"))

    def _take(self) -> list[Item] | None:
        """The waiting orders (at most `max_batch`); None when this thread should end: on stop,
        or after `IDLE_SECONDS` without work (threads start again with the next order, so an
        app that is dropped without being stopped does not keep its engine alive)."""
        with self._ready:
            while not self._queue:
                idle = self._stopping or not self._ready.wait(timeout=IDLE_SECONDS)
                if idle and not self._queue:
                    self._threads.remove(threading.current_thread())
                    return None
            n = min(len(self._queue), self.max_batch)
            return [self._queue.popleft() for _ in range(n)]

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            try:
                if self._on_batch is not None:
                    self._on_batch(len(batch))
                self._settle(batch)
            except BaseException as exc:  # never leave a request waiting
                log.exception("payment batch of %d failed", len(batch))
                self._fail(batch, exc)
                if not isinstance(exc, Exception):  # the thread ends: the next order starts one
                    with self._ready:
                        self._threads.remove(threading.current_thread())
                    raise

    def _settle(self, batch: list[Item]) -> None:
        items = [(order, signature) for order, signature, _ in batch]
        try:
            results = self._run(lambda s: signed_batch.judge_signed(s, self._ctx, items=items))
        except Exception as exc:
            if len(batch) == 1 or database_unavailable(exc):
                self._fail(batch, exc)
                return
            for item in batch:  # the whole batch failed: try each order alone
                self._settle([item])
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            # A request whose client went away cancelled its future: the others still get theirs.
            with contextlib.suppress(InvalidStateError):
                future.set_result(result)

    @staticmethod
    def _fail(batch: list[Item], exc: BaseException) -> None:
        """Answer every order of `batch` not answered yet: an outage as `DatabaseUnavailable`
        (one per request: an exception object is raised in one request only), anything else
        as itself."""
        outage = database_unavailable(exc)
        for _, _, future in batch:
            error = exc
            if outage:
                error = DatabaseUnavailable("the database cannot be reached; try again shortly")
                error.__cause__ = exc
            with contextlib.suppress(InvalidStateError):  # answered, or cancelled
                future.set_exception(error)
