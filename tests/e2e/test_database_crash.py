"""PostgreSQL crashes under concurrent signed payments (issue #12, "outages answered as
outages"): the services answer 503 `database_unavailable` with Retry-After while the server is
down or recovering, never 500, and take payments again once it is back without a restart.
The wallet SDK sends each signed order again until it is answered; every payment a client was
told about is in the ledger exactly once, and the cross-tier audit holds.

A network of its own, on an embedded PostgreSQL of its own (this test crashes the server):
`pg_ctl stop -m immediate` is what a power cut or a killed postmaster looks like (no
checkpoint; crash recovery on the next start).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from cbdc.crypto import SigningKey
from cbdc.settings import Settings
from orchestration.audit import run_audit
from orchestration.network import Network
from tests.e2e.conftest import LiveNetwork, free_port_base
from wallets.client import OperatorClient, PaymentReceipt, RemoteError, RetryPolicy

THREADS = 6
WALLETS_PER_OPERATOR = 4
LOAD = 4_000_00  # class IV: cap 10,000.00, daily 5,000.00 out
CRASH_AFTER = 4.0  # seconds of traffic before the crash (at least; see BEFORE_CRASH)
BEFORE_CRASH = 5  # ... and until this many payments were told, on a loaded machine too
DOWN_FOR = 2.0  # seconds between the immediate stop and the start
AFTER_RESTART = 6.0  # seconds of traffic once the server is back
REQUEST_TIMEOUT = 10.0  # no request may hang longer than this
# Patient enough to outlast the outage (the test's own bound: about 30 s per payment).
PATIENT = RetryPolicy(attempts=30, backoff=0.1, max_delay=1.0)
SETTLED_OK = {"completed", "delivered"}
FINAL = SETTLED_OK | {"returned", "failed"}


@dataclass
class Wire:
    """Every answer the services gave and every request that got none, from all threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    no_answer: list[str] = field(default_factory=list)


class RecordingTransport(httpx.BaseTransport):
    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        what = f"{request.method} {request.url.path}"
        try:
            response = self.inner.handle_request(request)
            response.read()
        except httpx.TransportError as exc:
            with self.wire.lock:
                self.wire.no_answer.append(f"{what}: {exc!r}")
            raise
        status = response.status_code
        if status < 400:
            key = str(status)
        else:
            try:
                code = response.json().get("code")
            except ValueError:
                code = None
            key = f"{status}:{code}"
            outage = (
                status == 503
                and code == "database_unavailable"
                and response.headers.get("content-type", "").startswith("application/problem+json")
                and float(response.headers.get("retry-after", "0")) >= 1
            )
            if not outage:
                with self.wire.lock:
                    self.wire.wrong.append(f"{what}: {status} {response.text[:300]}")
        with self.wire.lock:
            self.wire.answers[key] += 1
        return response

    def close(self) -> None:
        self.inner.close()


@dataclass
class Told:
    """What the payers were told: receipts (with when the call started), and failures."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    receipts: dict[str, tuple[str, str, int, float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


@pytest.fixture
def crash_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNetwork]:
    data_dir = tmp_path_factory.mktemp("crash-network")
    settings = Settings(
        database_url=None,  # an embedded server of its own: this test crashes it
        data_dir=data_dir,
        port=free_port_base(3),
        operators=2,
    )
    network = Network(settings, db_prefix=f"crash_{uuid.uuid4().hex[:8]}")
    try:
        network.prepare()
        config = network.start()
        # Durable commits (unlike the test session's server): what was acknowledged must
        # survive the crash.
        assert network.pg is not None and network.pg.durable
        yield LiveNetwork(config=config, data_dir=network.data_dir, network=network)
    finally:
        network.stop()
        if network.pg is not None:
            network.pg.destroy()


def test_a_database_crash_under_payments_is_answered_503_then_payments_go_on(
    crash_network: LiveNetwork,
) -> None:
    live = crash_network
    pg = live.network.pg
    assert pg is not None
    wire = Wire()

    def client(url: str) -> OperatorClient:
        http = httpx.Client(
            base_url=url, timeout=REQUEST_TIMEOUT, transport=RecordingTransport(wire)
        )
        return OperatorClient(http, retry=PATIENT)

    wallets: list[tuple[str, str, SigningKey]] = []  # (wallet id, operator url, key)
    for i, node in enumerate(live.config.operators):
        op = client(node.url)
        for j in range(WALLETS_PER_OPERATOR):
            wallet = op.open_wallet(display_name=f"crash {i}{j}", phone=f"+86136{i:02d}{j:06d}")
            live.credit_deposit(node.code, wallet.balance().customer_id, LOAD)
            assert wallet.load(LOAD).wallet_balance == LOAD
            wallets.append((wallet.wallet_id, node.url, wallet.key))

    told = Told()
    stop = threading.Event()

    def traffic(seed: int) -> None:
        rng = random.Random(seed)
        operators = {url: client(url) for _, url, _ in wallets}
        clients = {w: operators[url].wallet(w, key) for w, url, key in wallets}
        while not stop.is_set():
            payer, payee = rng.sample([w for w, _, _ in wallets], 2)
            amount = rng.randint(100, 500)
            started = time.monotonic()
            try:
                receipt: PaymentReceipt = clients[payer].pay(payee, amount)
            except RemoteError as exc:  # a refusal: none is expected here
                with told.lock:
                    told.failures.append(f"{payer}->{payee} {amount}: refused {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - the SDK gave up, or worse: reported
                with told.lock:
                    told.failures.append(f"{payer}->{payee} {amount}: {exc!r}")
                continue
            with told.lock:
                told.receipts[receipt.payment_id] = (payer, payee, amount, started)

    threads = [threading.Thread(target=traffic, args=(7000 + i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(CRASH_AFTER)
    deadline = time.monotonic() + 60
    while len(told.receipts) < BEFORE_CRASH and time.monotonic() < deadline:
        time.sleep(0.1)  # a loaded machine may not have paid anything within CRASH_AFTER
    pg.stop(immediate=True)  # the crash: no checkpoint, connections cut
    crashed = time.monotonic()
    time.sleep(DOWN_FOR)
    pg.start()  # crash recovery, then it takes connections again
    restarted = time.monotonic()
    time.sleep(AFTER_RESTART)
    stop.set()
    for t in threads:
        t.join(timeout=2 * PATIENT.attempts * PATIENT.max_delay + REQUEST_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "payment threads hung"
    print(
        f"\nanswers: {dict(wire.answers)}; payments told: {len(told.receipts)}; "
        f"down {restarted - crashed:.1f}s"
    )

    # Only successes and outages, answered as outages; no request went unanswered.
    assert wire.wrong == [], wire.wrong[:10]
    assert wire.no_answer == [], wire.no_answer[:10]
    assert wire.answers["503:database_unavailable"] > 0, wire.answers  # the crash was seen
    assert told.failures == [], told.failures[:10]
    # Payments went on after the restart, without restarting any service.
    after = [p for p, (*_, started) in told.receipts.items() if started > restarted]
    assert len(after) > 10, (len(after), wire.answers)
    before = [p for p, (*_, started) in told.receipts.items() if started < crashed]
    assert before, "no payment was made before the crash"

    # The audit drains the outboxes (settlements the crash held up) and checks every invariant.
    report = run_audit(live.config)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]
    assert all(v == 0 for v in report["failed_outbox_jobs"].values()), report

    # Every payment a payer was told about is in its operator's ledger, once, and final.
    by_id = {w: (url, key) for w, url, key in wallets}
    readers = {url: OperatorClient.connect(url) for _, url, _ in wallets}

    def status(payment_id: str) -> str:
        payer = told.receipts[payment_id][0]
        url, key = by_id[payer]
        return readers[url].wallet(payer, key).payment(payment_id).status

    with ThreadPoolExecutor(8) as pool:
        statuses = dict(zip(told.receipts, pool.map(status, told.receipts), strict=True))
    not_final = {p: s for p, s in statuses.items() if s not in FINAL}
    assert not_final == {}, not_final
    assert Counter(statuses.values())["delivered"] > 0  # cross-operator payments settled too

    # Each wallet holds its load, less what it paid, plus what it received: no payment moved
    # money that its payer was not told about, none was lost or applied twice.
    expected = {w: LOAD for w in by_id}
    for payment_id, (payer, payee, amount, _) in told.receipts.items():
        if statuses[payment_id] in SETTLED_OK:
            expected[payer] -= amount
            expected[payee] += amount
    actual = {w: readers[url].wallet(w, key).balance().balance for w, (url, key) in by_id.items()}
    assert actual == expected
    assert sum(actual.values()) == LOAD * len(by_id)
