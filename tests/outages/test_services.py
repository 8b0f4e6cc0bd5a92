"""The services through a database outage: 503 with Retry-After, background work waits,
and everything works again once the database is back."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import psycopg.errors
import pytest
from sqlalchemy import exc as sa_exc

from tests.conftest import InProcessNetwork
from tests.outages.helpers import Answers, database_down, operator_db
from wallets.client import NO_RETRY, OperatorClient, RemoteUnavailable, WalletClient
from wallets.orders import payment_order, sign_order


def assert_outage_answer(answers: Answers, method: str, path: str) -> None:
    got_method, got_path, status, headers, body = answers.last()
    assert (got_method, got_path) == (method, path)
    assert status == 503, (status, body)
    assert headers["content-type"].startswith("application/problem+json")
    assert int(headers["retry-after"]) >= 1
    assert body["code"] == "database_unavailable", body
    assert body["status"] == 503 and body["type"].endswith("/database_unavailable")


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
    worker = net.state("BKA1").new_worker(interval=0.05)
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
    settle = central_bank.settle_batch  # batched gross settlement (operators/settlement/rtgs.py)

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
