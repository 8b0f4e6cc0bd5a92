"""Outages answered as outages (issue #12): while a service's database cannot be reached, every
route answers 503 problem+json `database_unavailable` with Retry-After (never 500), the
micro-batched payment path answers every waiting request, background work waits and goes on,
and everything works again once the database is back, without a restart. The wallet SDK sends
the same signed order again through the outage; signed reads get a new envelope each try.

The outage here: the service's database stops accepting connections and its open ones are
terminated (what a restart of the server looks like to the service, for one database only).
tests/e2e/test_database_crash.py crashes a whole server under concurrent payments.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import psycopg.errors
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from cbdc.errors import (
    DatabaseUnavailable,
    DomainError,
    InsufficientFunds,
    ServiceUnavailable,
)
from cbdc.outages import database_unavailable
from cbdc.web.problems import install_problem_handlers
from operators import microbatch
from operators.jobs import OutboxWorker
from operators.microbatch import PaymentBatcher
from tests.conftest import InProcessNetwork
from wallets.client import NO_RETRY, OperatorClient, RemoteUnavailable, RetryPolicy, WalletClient
from wallets.orders import payment_order, sign_order

# ------------------------------------------------------------------ helpers


@contextmanager
def database_down(pg_url: str, database_url: str) -> Iterator[None]:
    """The database refuses new connections and its open ones are terminated (57P01), until
    the block ends."""
    name = make_url(database_url).database
    admin = create_engine(make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


class Answers:
    """Every response a test client got (an httpx event hook), thread-safe."""

    def __init__(self, http: httpx.Client) -> None:
        self.lock = threading.Lock()
        self.responses: list[tuple[str, str, int, dict[str, str], Any]] = []
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        http.event_hooks = {"request": [self._request], "response": [self._response]}

    def _request(self, request: httpx.Request) -> None:
        with self.lock:
            self.requests.append(
                (request.method, request.url.path, dict(request.headers), request.content)
            )

    def _response(self, response: httpx.Response) -> None:
        response.read()
        try:
            body = response.json()
        except ValueError:
            body = response.text
        with self.lock:
            self.responses.append(
                (
                    response.request.method,
                    response.request.url.path,
                    response.status_code,
                    dict(response.headers),
                    body,
                )
            )

    def last(self) -> tuple[str, str, int, dict[str, str], Any]:
        with self.lock:
            return self.responses[-1]


def assert_outage_answer(answers: Answers, method: str, path: str) -> None:
    got_method, got_path, status, headers, body = answers.last()
    assert (got_method, got_path) == (method, path)
    assert status == 503, (status, body)
    assert headers["content-type"].startswith("application/problem+json")
    assert int(headers["retry-after"]) >= 1
    assert body["code"] == "database_unavailable", body
    assert body["status"] == 503 and body["type"].endswith("/database_unavailable")


def operator_db(net: InProcessNetwork, code: str) -> str:
    return str(net.state(code).config.database_url)


def cb_db(net: InProcessNetwork) -> str:
    return str(net.cb_app.state.cb.config.database_url)


# ------------------------------------------------------------------ the services


def test_operator_answers_503_while_its_database_is_down_and_recovers_by_itself(
    network: InProcessNetwork, pg_url: str
) -> None:
    net = network
    payer = net.open_wallet("BKA1", load=50_00)
    payee = net.open_wallet("BKA1")
    assert payer.pay(payee.wallet_id, 1_00).status == "completed"
    answers = Answers(net.operator_http["BKA1"])
    wallet = WalletClient(net.operator("BKA1"), payer.wallet_id, payer.key, retry=NO_RETRY)
    wallet.balance()  # the wallet's key is known to the service now

    with database_down(pg_url, operator_db(net, "BKA1")):
        # A payment: the micro-batched path.
        with pytest.raises(RemoteUnavailable) as caught:
            wallet.pay(payee.wallet_id, 2_00)
        assert (caught.value.status, caught.value.code) == (503, "database_unavailable")
        assert caught.value.retry_after is not None and caught.value.retry_after >= 1
        assert_outage_answer(answers, "POST", "/v1/payments")
        # Reads: the nonce is recorded in the request's transaction.
        with pytest.raises(RemoteUnavailable):
            wallet.balance()
        assert_outage_answer(answers, "GET", f"/v1/wallets/{payer.wallet_id}")
        # The signing key looked up in the database (not cached): the auth dependency.
        net.state("BKA1")._wallet_keys.clear()
        with pytest.raises(RemoteUnavailable):
            wallet.history()
        assert_outage_answer(answers, "GET", f"/v1/wallets/{payer.wallet_id}/history")
        # A batch of signed orders and a staff route.
        order = payment_order(
            payer=payer.wallet_id, payee=payee.wallet_id, amount=2_00, currency="CNY"
        )
        with pytest.raises(RemoteUnavailable):
            OperatorClient(net.operator_http["BKA1"], retry=NO_RETRY).pay_batch(
                [sign_order(payer.key, order)]
            )
        assert_outage_answer(answers, "POST", "/v1/payments/batch")
        with pytest.raises(RemoteUnavailable) as caught:
            net.staff("BKA1").request("POST", "/v1/admin/jobs/run")
        assert caught.value.code == "database_unavailable"
        # Public routes that do not need the database still answer.
        assert net.operator_http["BKA1"].get("/health").status_code == 200

    # Back by itself: no restart, the pool replaced its dead connections.
    receipt = wallet.pay(payee.wallet_id, 3_00)
    assert receipt.status == "completed" and not receipt.replayed
    # The payment refused during the outage did not happen; the one after it did.
    assert wallet.balance().balance == 50_00 - 1_00 - 3_00
    amounts = [i.amount for i in wallet.history().items]
    assert -2_00 not in amounts and -3_00 in amounts, amounts


def test_central_bank_answers_503_and_cross_operator_payments_wait_for_it(
    network: InProcessNetwork, pg_url: str
) -> None:
    net = network
    payer = net.open_wallet("BKA1", load=20_00)
    payee = net.open_wallet("BKB1")
    with database_down(pg_url, cb_db(net)):
        with pytest.raises(RemoteUnavailable) as caught:
            net.admin.request("GET", "/v1/admin/audit")
        assert (caught.value.status, caught.value.code) == (503, "database_unavailable")
        assert caught.value.retry_after is not None
        # The operator takes the payment; settling it waits for the central bank (RTGS: the
        # settlement the request tried at once met a 503, which is "try again", not a refusal).
        receipt = payer.pay(payee.wallet_id, 5_00)
        assert receipt.status == "pending_settlement"
    deadline = time.time() + 20
    while time.time() < deadline:
        net.run_jobs()
        if payer.payment(receipt.payment_id).status == "delivered":
            break
        time.sleep(0.2)
    assert payer.payment(receipt.payment_id).status == "delivered"
    assert payee.balance().balance == 5_00
    net.admin.request("GET", "/v1/admin/audit")


def test_the_worker_outlives_outages_and_delivers_once_the_payee_is_back(
    network: InProcessNetwork, pg_url: str
) -> None:
    net = network
    payer = net.open_wallet("BKA1", load=20_00)
    payee = net.open_wallet("BKB1")
    worker = OutboxWorker(net.state("BKA1").runner, interval=0.05)
    worker.start()
    try:
        with database_down(pg_url, operator_db(net, "BKA1")):
            time.sleep(0.5)  # the worker's own database is gone for a few ticks
            assert worker.is_alive()
        with database_down(pg_url, operator_db(net, "BKB1")):
            # Settled at the central bank; the payee's operator answers 503: try again later.
            receipt = payer.pay(payee.wallet_id, 4_00)
            assert receipt.status == "settled", receipt
        deadline = time.time() + 15
        while time.time() < deadline and payer.payment(receipt.payment_id).status != "delivered":
            time.sleep(0.1)
        assert payer.payment(receipt.payment_id).status == "delivered"
        assert payee.balance().balance == 4_00
        assert worker.is_alive()
    finally:
        worker.stop()
        worker.join(timeout=5)


def test_a_job_an_outage_interrupted_is_due_again_once_the_database_is_back(
    network: InProcessNetwork, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the release, a job whose run an outage broke waits out its 30 s lease."""
    net = network
    state = net.state("BKA1")
    payer = net.open_wallet("BKA1", load=20_00)
    payee = net.open_wallet("BKB1")
    central_bank = state.ctx.central_bank
    settle = central_bank.settle_batch  # batched gross settlement (operators/rtgs.py)

    def settle_then_lose_the_database(**kwargs: Any) -> Any:
        settle(**kwargs)  # the central bank settles; then our database goes away
        raise sa_exc.OperationalError(
            "UPDATE outbox", {}, psycopg.OperationalError("server closed the connection")
        )

    monkeypatch.setattr(central_bank, "settle_batch", settle_then_lose_the_database)
    receipt = payer.pay(payee.wallet_id, 4_00)  # RTGS: the settler's run breaks
    assert receipt.status == "pending_settlement"
    monkeypatch.setattr(central_bank, "settle_batch", settle)
    net.run_jobs()  # at once, not after the lease
    assert payer.payment(receipt.payment_id).status == "delivered"
    assert payee.balance().balance == 4_00


# ------------------------------------------------------------------ the wallet SDK


def test_the_sdk_sends_the_same_order_through_an_outage_and_signs_each_read_anew(
    network: InProcessNetwork, pg_url: str
) -> None:
    net = network
    payer = net.open_wallet("BKA1", load=30_00)
    payee = net.open_wallet("BKA1")
    answers = Answers(net.operator_http["BKA1"])
    patient = RetryPolicy(attempts=40, backoff=0.05, max_delay=0.1)
    wallet = WalletClient(net.operator("BKA1"), payer.wallet_id, payer.key, retry=patient)
    wallet.balance()
    results: dict[str, Any] = {}

    def call(name: str, fn: Any) -> None:
        try:
            results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - checked below
            results[name] = exc

    with database_down(pg_url, operator_db(net, "BKA1")):
        threads = [
            threading.Thread(target=call, args=("pay", lambda: wallet.pay(payee.wallet_id, 7_00))),
            threading.Thread(target=call, args=("balance", wallet.balance)),
        ]
        for t in threads:
            t.start()
        time.sleep(1.0)  # both have met 503 a few times by now
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads)
    receipt, info = results["pay"], results["balance"]
    assert not isinstance(receipt, Exception), receipt
    assert not isinstance(info, Exception), info
    assert receipt.status == "completed"

    pays = [r for r in answers.requests if r[:2] == ("POST", "/v1/payments")]
    reads = [r for r in answers.requests if r[:2] == ("GET", f"/v1/wallets/{payer.wallet_id}")]
    assert len(pays) >= 2 and len(reads) >= 3  # the warm-up read, then tries in the outage
    assert len({body for *_, body in pays}) == 1  # the same signed order every time
    read_nonces = [headers["cbdc-nonce"] for _, _, headers, _ in reads]
    assert len(set(read_nonces)) == len(read_nonces)  # a new envelope every time
    statuses = [s for m, p, s, _, _ in answers.responses if (m, p) == ("POST", "/v1/payments")]
    assert set(statuses[:-1]) == {503} and statuses[-1] == 201, statuses
    assert wallet.balance().balance == 30_00 - 7_00


def test_a_retried_order_that_went_through_comes_back_as_its_receipt(
    network: InProcessNetwork,
) -> None:
    """The answer to a payment is lost (the operator committed it): the SDK's next try of the
    same order gets the original receipt, and the money moved once."""
    net = network
    payer = net.open_wallet("BKA1", load=30_00)
    payee = net.open_wallet("BKA1")
    http = net.operator_http["BKA1"]
    lost = {"n": 0}

    def lose_first_answer(response: httpx.Response) -> None:
        if response.request.url.path == "/v1/payments" and lost["n"] == 0:
            lost["n"] += 1
            raise httpx.ReadError("connection reset", request=response.request)

    http.event_hooks = {"response": [lose_first_answer]}
    wallet = WalletClient(
        net.operator("BKA1"), payer.wallet_id, payer.key, retry=RetryPolicy(backoff=0.01)
    )
    receipt = wallet.pay(payee.wallet_id, 6_00)
    http.event_hooks = {"response": []}
    assert lost["n"] == 1 and receipt.replayed
    assert wallet.balance().balance == 30_00 - 6_00
    assert payee.balance().balance == 6_00


def test_retry_policy_honours_retry_after_and_gives_up() -> None:
    policy = RetryPolicy(attempts=3, backoff=0.1, max_delay=2.0)
    busy = RemoteUnavailable("503", status=503, code="database_unavailable", retry_after=1.0)
    assert policy.delay(1, busy) == 1.0
    assert policy.delay(3, busy) is None  # the last try
    assert RetryPolicy(max_delay=0.5).delay(1, busy) == 0.5
    assert policy.delay(1, RemoteUnavailable("500", status=500)) is None  # a bug, not an outage
    unsigned = RemoteUnavailable("200 answer without a valid response signature")
    assert policy.delay(1, unsigned) is None
    sleeps: list[float] = []
    tries = {"n": 0}

    def always_busy() -> None:
        tries["n"] += 1
        raise busy

    with pytest.raises(RemoteUnavailable):
        policy.call(always_busy, sleep=sleeps.append)
    assert tries["n"] == 3 and sleeps == [1.0, 1.0]


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


# ------------------------------------------------------------------ the payment batcher


class OutageJudge:
    """Stands in for `signed_batch.judge_signed`; the database fails while `down` is set."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[int] = []

    def __call__(
        self, session: Any, ctx: Any, *, items: list[tuple[dict[str, Any], str]]
    ) -> list[dict[str, Any] | DomainError]:
        self.gate.wait(5)
        self.batches.append(len(items))
        if self.down.is_set():
            raise sa_exc.OperationalError(
                "SELECT", {}, psycopg.OperationalError("server closed the connection")
            )
        return [
            InsufficientFunds("too much") if o["amount"] > 100 else {"nonce": o["nonce"]}
            for o, _ in items
        ]


def run_in_transaction(work: Any) -> Any:
    return work(None)


@pytest.fixture
def outage_judge(monkeypatch: pytest.MonkeyPatch) -> OutageJudge:
    judge = OutageJudge()
    monkeypatch.setattr(microbatch.signed_batch, "judge_signed", judge)
    return judge


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
