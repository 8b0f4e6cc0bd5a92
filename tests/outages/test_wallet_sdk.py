"""The wallet SDK through an outage: the same signed order sent again, signed reads anew."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from tests.conftest import InProcessNetwork
from tests.helpers import wait_until
from tests.outages.helpers import Answers, database_down, operator_db
from wallets.client import RemoteUnavailable, RetryPolicy, WalletClient

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

        def met_503(path: str) -> int:
            with answers.lock:
                return sum(1 for m, p, s, *_ in answers.responses if p == path and s == 503)

        # both have met 503 a few times before the database comes back
        wait_until(
            lambda: met_503("/v1/payments") >= 3 and met_503(f"/v1/wallets/{payer.wallet_id}") >= 3,
            timeout=10,
        )
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
