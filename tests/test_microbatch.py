"""The payment batcher on its own (operators/payments/microbatch.py): requests that arrive while a
batch runs share the next one, each gets its own answer, a batch that fails as a whole is retried
order by order, idle threads end and come back. The judging itself is replaced by a stand-in
here; the real path (signed orders on PostgreSQL) is exercised by every payment test."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cbdc.errors import DomainError, InsufficientFunds
from operators.payments import microbatch
from operators.payments.microbatch import PaymentBatcher


class FakeJudge:
    """Stands in for `signed_batch.judge_signed`: a receipt per order, a refusal for amounts
    over 100, and a failure of the whole batch when an order is marked `poison`."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def __call__(
        self, session: Any, ctx: Any, *, items: list[tuple[dict[str, Any], str]]
    ) -> list[dict[str, Any] | DomainError]:
        with self.lock:
            self.batches.append(len(items))
        time.sleep(self.delay)
        if any(order.get("poison") for order, _ in items):
            raise RuntimeError("the database went away")
        return [
            InsufficientFunds("too much") if order["amount"] > 100 else {"nonce": order["nonce"]}
            for order, _ in items
        ]


def run_in_transaction(work: Any) -> Any:
    return work(None)


@pytest.fixture
def judge(monkeypatch: pytest.MonkeyPatch) -> FakeJudge:
    fake = FakeJudge(delay=0.05)
    monkeypatch.setattr(microbatch.signed_batch, "judge_signed", fake)
    return fake


def test_concurrent_orders_share_batches_and_each_gets_its_own_answer(judge: FakeJudge) -> None:
    batcher = PaymentBatcher(run_in_transaction, ctx=None, threads=1)  # type: ignore[arg-type]

    def order(i: int) -> Any:
        return batcher.submit({"nonce": f"n{i}", "amount": 50 + i * 5}, "sig").result(timeout=10)

    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            futures = [pool.submit(order, i) for i in range(20)]
            answers = [f.result() for f in futures]
    finally:
        batcher.stop()
    for i, answer in enumerate(answers):
        if 50 + i * 5 > 100:
            assert isinstance(answer, InsufficientFunds)
        else:
            assert answer == {"nonce": f"n{i}"}
    assert sum(judge.batches) == 20
    assert max(judge.batches) > 1, judge.batches  # orders that waited went together


def test_a_batch_that_fails_as_a_whole_is_retried_order_by_order(
    judge: FakeJudge, monkeypatch: pytest.MonkeyPatch
) -> None:
    judge.delay = 0.0
    batcher = PaymentBatcher(run_in_transaction, ctx=None, threads=1)  # type: ignore[arg-type]
    gate = threading.Event()
    original = judge.__call__

    def slow_first(*args: Any, **kwargs: Any) -> Any:  # hold the thread so the rest pile up
        gate.wait(5)
        return original(*args, **kwargs)

    monkeypatch.setattr(microbatch.signed_batch, "judge_signed", slow_first)
    try:
        first = batcher.submit({"nonce": "a", "amount": 1}, "sig")
        time.sleep(0.05)
        rest = [
            batcher.submit({"nonce": "b", "amount": 2}, "sig"),
            batcher.submit({"nonce": "c", "amount": 3, "poison": True}, "sig"),
            batcher.submit({"nonce": "d", "amount": 4}, "sig"),
        ]
        gate.set()
        assert first.result(timeout=5) == {"nonce": "a"}
        assert rest[0].result(timeout=5) == {"nonce": "b"}
        with pytest.raises(RuntimeError, match="went away"):
            rest[1].result(timeout=5)
        assert rest[2].result(timeout=5) == {"nonce": "d"}
    finally:
        batcher.stop()
    assert judge.batches[:2] == [1, 3]  # the three together, then each alone
    assert sorted(judge.batches[2:]) == [1, 1, 1]


def test_idle_threads_end_and_come_back(judge: FakeJudge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(microbatch, "IDLE_SECONDS", 0.1)
    judge.delay = 0.0
    batcher = PaymentBatcher(run_in_transaction, ctx=None, threads=2)  # type: ignore[arg-type]
    assert batcher.submit({"nonce": "a", "amount": 1}, "sig").result(timeout=5) == {"nonce": "a"}
    deadline = time.monotonic() + 5
    while batcher._threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert batcher._threads == []
    assert batcher.submit({"nonce": "b", "amount": 1}, "sig").result(timeout=5) == {"nonce": "b"}
    batcher.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        batcher.submit({"nonce": "c", "amount": 1}, "sig")
