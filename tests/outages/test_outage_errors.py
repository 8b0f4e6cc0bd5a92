"""What counts as a database outage, how the handlers answer it, and the payment batcher
answering every waiting request when a batch breaks."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import psycopg.errors
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc

from cbdc.errors import (
    DatabaseUnavailable,
    ServiceUnavailable,
)
from cbdc.outages import database_unavailable
from cbdc.web.problems import install_problem_handlers
from operators.payments import microbatch
from operators.payments.microbatch import PaymentBatcher
from tests.outages.helpers import OutageJudge

# ------------------------------------------------------------------ what counts as an outage


@pytest.mark.parametrize(
    ("exc", "outage"),
    [
        (psycopg.OperationalError("connection failed: Connection refused"), True),
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),
        (psycopg.errors.CrashShutdown("terminating connection"), True),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
        (psycopg.errors.ConnectionFailure("connection failure"), True),
        (psycopg.InterfaceError("the connection is closed"), True),
        (sa_exc.TimeoutError("QueuePool limit reached"), True),
        (sa_exc.DisconnectionError("gone"), True),
        (
            sa_exc.OperationalError("SELECT 1", {}, psycopg.errors.AdminShutdown("57P01")),
            True,
        ),
        (psycopg.errors.UniqueViolation("duplicate key"), False),
        (psycopg.errors.SerializationFailure("could not serialize"), False),
        (psycopg.errors.QueryCanceled("statement timeout"), False),
        (sa_exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("dup")), False),
        (ValueError("not a database error"), False),
    ],
)
def test_what_counts_as_a_database_outage(exc: BaseException, outage: bool) -> None:
    assert database_unavailable(exc) is outage


def test_an_outage_wrapped_in_another_error_is_still_one() -> None:
    try:
        try:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        except psycopg.OperationalError as inner:
            raise RuntimeError("settling the batch failed") from inner
    except RuntimeError as outer:
        assert database_unavailable(outer)


def test_the_handlers_answer_outages_503_and_other_database_errors_500() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/outage")
    def outage() -> None:
        raise sa_exc.OperationalError("SELECT 1", {}, psycopg.errors.AdminShutdown("57P01"))

    @app.get("/wrapped")
    def wrapped() -> None:
        try:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        except psycopg.OperationalError as exc:
            raise RuntimeError("the batch failed") from exc

    @app.get("/bug")
    def bug() -> None:
        raise sa_exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("dup"))

    client = TestClient(app, raise_server_exceptions=False)
    for path in ("/outage", "/wrapped"):
        answer = client.get(path)
        assert answer.status_code == 503, path
        assert answer.headers["retry-after"] == "1"
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "database_unavailable"
    answer = client.get("/bug")
    assert (answer.status_code, answer.json()["code"]) == (500, "internal_error")


def run_in_transaction(work: Any) -> Any:
    return work(None)


def test_a_batch_the_database_fails_answers_every_request_503_at_once(
    outage_judge: OutageJudge,
) -> None:
    batcher = PaymentBatcher(run_in_transaction, ctx=None, threads=1)  # type: ignore[arg-type]
    try:
        outage_judge.gate.clear()  # hold the thread so that the orders pile up
        first = batcher.submit({"nonce": "a", "amount": 1}, "sig")
        time.sleep(0.05)
        outage_judge.down.set()
        rest = [batcher.submit({"nonce": n, "amount": 2}, "sig") for n in "bcd"]
        outage_judge.gate.set()
        for future in [first, *rest]:
            with pytest.raises(DatabaseUnavailable) as caught:
                future.result(timeout=5)
            assert caught.value.status == 503 and caught.value.code == "database_unavailable"
        # The three waiting orders failed together, not tried one by one (that cannot help).
        assert outage_judge.batches == [1, 3]
        outage_judge.down.clear()
        assert batcher.submit({"nonce": "e", "amount": 3}, "sig").result(timeout=5) == {
            "nonce": "e"
        }
    finally:
        batcher.stop()


def test_no_request_is_left_waiting_when_a_batch_breaks(
    outage_judge: OutageJudge,
) -> None:
    calls = {"n": 0}

    def on_batch(n: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug in the batch callback")

    batcher = PaymentBatcher(
        run_in_transaction,
        ctx=None,  # type: ignore[arg-type]
        threads=1,
        on_batch=on_batch,
    )
    try:
        with pytest.raises(RuntimeError, match="callback"):
            batcher.submit({"nonce": "a", "amount": 1}, "sig").result(timeout=5)
        # The thread lived on and answers the next order.
        assert batcher.submit({"nonce": "b", "amount": 1}, "sig").result(timeout=5) == {
            "nonce": "b"
        }
    finally:
        batcher.stop()


def test_stopping_answers_the_orders_still_queued(
    outage_judge: OutageJudge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(microbatch, "STOP_SECONDS", 0.2)
    batcher = PaymentBatcher(run_in_transaction, ctx=None, threads=1)  # type: ignore[arg-type]
    outage_judge.gate.clear()  # the thread is busy with the first order past stop()'s wait
    first = batcher.submit({"nonce": "a", "amount": 1}, "sig")
    time.sleep(0.05)
    queued = batcher.submit({"nonce": "b", "amount": 1}, "sig")
    batcher.stop()
    with pytest.raises(ServiceUnavailable) as caught:
        queued.result(timeout=1)
    assert caught.value.status == 503
    outage_judge.gate.set()
    assert first.result(timeout=5) == {"nonce": "a"}
