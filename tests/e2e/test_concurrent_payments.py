"""Concurrent signed payments over real HTTP against a running network, then the cross-tier audit
and an independent reconciliation of every wallet from the receipts the clients got back."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cbdc.crypto import SigningKey
from cbdc.http import RemoteError, RemoteUnavailable
from cbdc.identity import make_bank_account, make_resident_id
from orchestration.audit import run_audit
from tests.e2e.conftest import LiveNetwork
from wallets.client import OperatorClient, PaymentReceipt, WalletClient
from wallets.orders import payment_order, sign_order

THREADS = 8
PAYMENTS = 400
# Minor units; classes follow cbdc/policy.toml (IV: single 2,000.00, cap 10,000.00;
# II: single 50,000.00, cap 500,000.00).
LOAD = {"IV": 4_000_00, "II": 50_000_00}
# A class II payer sends this to a class IV wallet at the other operator: it would push the payee
# over its cap, so the payee's operator must send it back and the payer be refunded.
OVER_PAYEE_CAP = 9_000_00
TOO_LARGE = {"IV": 2_500_00, "II": 60_000_00}
EXPECTED_REFUSALS = {
    "single_payment_limit_exceeded",
    "daily_limit_exceeded",
    "insufficient_funds",
    "payee_balance_cap_exceeded",
}
SETTLED_OK = {"completed", "delivered"}
FINAL = SETTLED_OK | {"returned", "failed"}


def resident_id(first17: str) -> str:
    """A resident ID number with a valid GB 11643 check digit."""
    return make_resident_id(first17)


@dataclass
class WalletSpec:
    wallet_id: str
    operator: str
    url: str
    key: SigningKey
    wallet_class: str
    loaded: int = 0


@dataclass
class Ledger:
    """What the clients were told, shared by all threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: Counter[str] = field(default_factory=Counter)
    # payment id -> (payer, payee, amount)
    accepted: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    too_large_accepted: list[str] = field(default_factory=list)
    over_cap: list[str] = field(default_factory=list)
    replays: int = 0
    replay_problems: list[str] = field(default_factory=list)

    def accept(self, payer: str, receipt: PaymentReceipt) -> None:
        with self.lock:
            self.outcomes[f"accepted:{receipt.status}"] += 1
            entry = (payer, receipt.payee, receipt.amount)
            previous = self.accepted.setdefault(receipt.payment_id, entry)
            if previous != entry:
                self.replay_problems.append(f"{receipt.payment_id}: {previous} vs {entry}")

    def refuse(self, exc: RemoteError) -> None:
        with self.lock:
            self.outcomes[f"{exc.status}:{exc.code}"] += 1

    def broken(self, text: str) -> None:
        with self.lock:
            self.outcomes["unexpected"] += 1
            self.unexpected.append(text)


def open_wallets(live: LiveNetwork) -> list[WalletSpec]:
    specs: list[WalletSpec] = []
    for i, node in enumerate(live.config.operators):
        op = OperatorClient.connect(node.url)
        staff_key = live.staff_key(node.code)
        for j in range(6):
            if j < 4:
                wallet = op.open_wallet(
                    display_name=f"E2E IV {node.code} {j}", phone=f"+86139{i:02d}{j:06d}"
                )
                wallet_class = "IV"
            else:
                wallet = op.open_wallet(
                    display_name=f"E2E II {node.code} {j}",
                    phone=f"+86137{i:02d}{j:06d}",
                    id_number=resident_id(f"1101011990010{i}{j}{j}{j}"),
                    bank_account=make_bank_account(f"6217000000{i:02d}{j:03d}"),
                    wallet_class="II",
                    staff_key=staff_key,
                )
                wallet_class = "II"
            info = wallet.balance()
            assert info.wallet_class == wallet_class
            assert info.balance == 0
            amount = LOAD[wallet_class]
            live.credit_deposit(node.code, info.customer_id, amount)
            result = wallet.load(amount)
            assert result.wallet_balance == amount
            specs.append(
                WalletSpec(
                    wallet_id=wallet.wallet_id,
                    operator=node.code,
                    url=node.url,
                    key=wallet.key,
                    wallet_class=wallet_class,
                    loaded=amount,
                )
            )
    return specs


def submit_twice(client: WalletClient, payee: str, amount: int, concurrent: bool, ledger: Ledger):
    """Send one signed order twice (one after the other, or at the same time)."""
    signed = sign_order(
        client.key,
        payment_order(
            payer=client.wallet_id, payee=payee, amount=amount, currency=client.operator.currency
        ),
    )
    results: list[Any] = []

    def attempt() -> Any:
        try:
            return client.submit(signed)
        except (RemoteError, RemoteUnavailable) as exc:
            return exc

    if concurrent:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _: attempt(), range(2)))
    else:
        results = [attempt(), attempt()]
    receipts = [r for r in results if isinstance(r, PaymentReceipt)]
    with ledger.lock:
        ledger.replays += 1
        if len({r.payment_id for r in receipts}) > 1:
            ledger.replay_problems.append(
                f"one signed order gave two payments: {[r.payment_id for r in receipts]}"
            )
        if len(receipts) == 2 and sorted(r.replayed for r in receipts) != [False, True]:
            ledger.replay_problems.append(
                f"exactly one of two identical submissions must be the original: "
                f"{[r.replayed for r in receipts]}"
            )
    return results


def traffic(specs: list[WalletSpec], ledger: Ledger, seed: int, count: int) -> None:
    rng = random.Random(seed)
    operators = {s.operator: OperatorClient.connect(s.url) for s in specs}
    clients = {s.wallet_id: operators[s.operator].wallet(s.wallet_id, s.key) for s in specs}
    # First, one payment the payee's operator must return (payee over its balance cap).
    payer = rng.choice([s for s in specs if s.wallet_class == "II"])
    payee = rng.choice(
        [s for s in specs if s.wallet_class == "IV" and s.operator != payer.operator]
    )
    try:
        receipt = clients[payer.wallet_id].pay(payee.wallet_id, OVER_PAYEE_CAP, memo="over cap")
        ledger.accept(payer.wallet_id, receipt)
        with ledger.lock:
            ledger.over_cap.append(receipt.payment_id)
    except RemoteError as exc:
        ledger.refuse(exc)
    except Exception as exc:  # noqa: BLE001 - reported by the test
        ledger.broken(f"over-cap {payer.wallet_id}->{payee.wallet_id}: {exc!r}")
    for n in range(count):
        payer = rng.choice(specs)
        payee = rng.choice([s for s in specs if s.wallet_id != payer.wallet_id])
        client = clients[payer.wallet_id]
        kind = rng.random()
        try:
            if kind < 0.08:
                results = submit_twice(
                    client,
                    payee.wallet_id,
                    rng.randint(100, 5_000),
                    concurrent=n % 2 == 0,
                    ledger=ledger,
                )
                for r in results:
                    if isinstance(r, PaymentReceipt):
                        ledger.accept(payer.wallet_id, r)
                    elif isinstance(r, RemoteError):
                        ledger.refuse(r)
                    else:
                        ledger.broken(f"retry {payer.wallet_id}->{payee.wallet_id}: {r!r}")
                continue
            too_large = kind > 0.9
            amount = TOO_LARGE[payer.wallet_class] if too_large else rng.randint(100, 20_000)
            receipt = client.pay(payee.wallet_id, amount, memo=f"e2e {seed}/{n}")
            ledger.accept(payer.wallet_id, receipt)
            if too_large:
                with ledger.lock:
                    ledger.too_large_accepted.append(receipt.payment_id)
        except RemoteError as exc:
            ledger.refuse(exc)
            if not 400 <= exc.status < 500:
                ledger.broken(f"RemoteError outside 4xx: {exc}")
        except RemoteUnavailable as exc:
            ledger.broken(f"{payer.wallet_id}->{payee.wallet_id}: unavailable/5xx: {exc}")
        except Exception as exc:  # noqa: BLE001 - reported by the test
            ledger.broken(f"{payer.wallet_id}->{payee.wallet_id}: {exc!r}")


def final_statuses(
    specs: list[WalletSpec], accepted: dict[str, tuple[str, str, int]], timeout: float = 30
) -> dict[str, str]:
    by_id = {s.wallet_id: s for s in specs}
    operators = {s.operator: OperatorClient.connect(s.url) for s in specs}
    statuses: dict[str, str] = {}
    deadline = time.time() + timeout
    pending = set(accepted)
    while pending:
        for payment_id in sorted(pending):
            payer = by_id[accepted[payment_id][0]]
            wallet = operators[payer.operator].wallet(payer.wallet_id, payer.key)
            statuses[payment_id] = wallet.payment(payment_id).status
        pending = {p for p in pending if statuses[p] not in FINAL}
        if not pending or time.time() > deadline:
            break
        time.sleep(0.3)
    return statuses


def test_concurrent_http_payments(live_network: LiveNetwork) -> None:
    specs = open_wallets(live_network)
    assert {s.operator for s in specs} == {n.code for n in live_network.config.operators}
    ledger = Ledger()

    per_thread = PAYMENTS // THREADS
    threads = [
        threading.Thread(target=traffic, args=(specs, ledger, 1000 + i, per_thread))
        for i in range(THREADS)
    ]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "payment threads did not finish in time"
    elapsed = time.time() - started
    print(f"\n{PAYMENTS} payment operations in {elapsed:.1f}s: {dict(ledger.outcomes)}")

    # No server error, no transport failure, no surprise refusal.
    assert ledger.unexpected == [], ledger.unexpected[:10]
    refusal_codes = {k.split(":", 1)[1] for k in ledger.outcomes if k[0].isdigit()}
    assert refusal_codes <= EXPECTED_REFUSALS, ledger.outcomes
    assert all(k.startswith("4") for k in ledger.outcomes if k[0].isdigit()), ledger.outcomes
    # The deliberately oversized payments were all refused by the single-payment limit.
    assert ledger.too_large_accepted == []
    assert ledger.outcomes["422:single_payment_limit_exceeded"] > 0, ledger.outcomes
    # Retries of one signed order moved money once.
    assert ledger.replays > 0
    assert ledger.replay_problems == [], ledger.replay_problems[:10]
    assert len(ledger.accepted) >= PAYMENTS // 2, ledger.outcomes

    # The cross-tier audit: drains the outboxes, then every invariant holds.
    report = run_audit(live_network.config)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert report["ok"], failed
    assert report["checks"] and failed == []
    assert all(v == 0 for v in report["failed_outbox_jobs"].values()), report

    # Every accepted payment reached a final state.
    statuses = final_statuses(specs, ledger.accepted)
    not_final = {p: s for p, s in statuses.items() if s not in FINAL}
    assert not_final == {}, not_final
    status_counts = Counter(statuses.values())
    print(f"final statuses: {dict(status_counts)}")
    assert status_counts["completed"] > 0  # same-operator payments
    assert status_counts["delivered"] > 0  # cross-operator payments
    # The over-cap payments came back (at most one could have found its payee drained enough).
    assert ledger.over_cap, ledger.outcomes
    returned = [p for p in ledger.over_cap if statuses[p] == "returned"]
    assert returned, {p: statuses[p] for p in ledger.over_cap}

    # Reconcile every wallet against the receipts: load - sent + received (settled ones only).
    expected = {s.wallet_id: s.loaded for s in specs}
    for payment_id, (payer, payee, amount) in ledger.accepted.items():
        if statuses[payment_id] in SETTLED_OK:
            expected[payer] -= amount
            expected[payee] += amount
    operators = {s.operator: OperatorClient.connect(s.url) for s in specs}
    actual = {
        s.wallet_id: operators[s.operator].wallet(s.wallet_id, s.key).balance().balance
        for s in specs
    }
    assert actual == expected
    # Wallet-to-wallet payments conserve money (returns were refunded to their payers).
    assert sum(actual[s.wallet_id] - s.loaded for s in specs) == 0
    assert all(balance >= 0 for balance in actual.values())
    caps = {"IV": 10_000_00, "II": 500_000_00}
    over = {
        s.wallet_id: actual[s.wallet_id]
        for s in specs
        if actual[s.wallet_id] > caps[s.wallet_class]
    }
    assert over == {}, over

    movement: defaultdict[str, int] = defaultdict(int)
    for payment_id, (_, _, amount) in ledger.accepted.items():
        movement[statuses[payment_id]] += amount
    print(f"value by final status: {dict(movement)}")
