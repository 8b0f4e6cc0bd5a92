"""Micro-batching of single signed payments: concurrent `POST /v1/payments` requests share one
database transaction.

A request hands its signed order to the batcher and waits. Batcher threads each take whatever
orders are waiting (up to `max_batch`), run them through the batch payment path
(`signed_batch.judge_signed`: the same checks and problem codes as a single payment, accounts
locked once in ascending id order) in one transaction, commit once, and answer every request
with its own receipt or refusal. Nothing waits on a timer: orders pile up while the previous
transaction commits, so the batch size follows the load (1 when idle, dozens under load) and
one durable commit (one fsync) serves them all.

If a batch fails as a whole (not a refusal of one order, e.g. a lost connection), each of its
orders is retried alone in its own transaction, so one bad order cannot sink the others.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from sqlalchemy.orm import Session

from cbdc.errors import DomainError
from operators import signed_batch
from operators.context import OperatorContext

IDLE_SECONDS = 5.0
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
            thread.join(timeout=10)

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
            if self._on_batch is not None:
                self._on_batch(len(batch))
            self._settle(batch)

    def _settle(self, batch: list[Item]) -> None:
        items = [(order, signature) for order, signature, _ in batch]
        try:
            results = self._run(lambda s: signed_batch.judge_signed(s, self._ctx, items=items))
        except Exception as exc:  # the whole batch failed: try each order alone
            if len(batch) == 1:
                batch[0][2].set_exception(exc)
                return
            for item in batch:
                self._settle([item])
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            future.set_result(result)
