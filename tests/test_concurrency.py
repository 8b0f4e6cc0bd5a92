"""Payments in parallel, in-process: several threads pay at random among ten wallets on both
operators (same- and cross-operator, some bound to fail on limits or funds). Afterwards every
payment has a final outcome, every wallet's balance is what the successful payments say, and
money is conserved across the tiers."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cbdc.http import RemoteError, SignedClient
from tests.helpers import drain
from wallets.orders import payment_order, sign_order

CODES = ("BKA1", "BKB1")
EXPECTED_REFUSALS = {
    "insufficient_funds",
    "single_payment_limit_exceeded",
    "daily_limit_exceeded",
    "annual_limit_exceeded",
    "payee_balance_cap_exceeded",
}
PAYMENTS = 240
WORKERS = 6


def test_parallel_random_payments_conserve_money(network: Any) -> None:
    rng = random.Random(20261121)
    layout = [
        ("I", 5_000_000),
        ("I", 5_000_000),
        ("II", 3_000_000),
        ("II", 3_000_000),
        ("IV", 300_000),
    ]
    wallets, start = [], {}
    for code in CODES:
        for wallet_class, load in layout:
            wallet = network.open_wallet(code, wallet_class=wallet_class, deposit=load, load=load)
            wallet.operator.info()  # cache the operator's info before the threads start
            wallets.append(wallet)
            start[wallet.wallet_id] = load
    by_id = {w.wallet_id: w for w in wallets}

    plan = []
    for _ in range(PAYMENTS):
        payer, payee = rng.sample(wallets, 2)
        roll = rng.random()
        if roll < 0.75:
            amount = rng.randint(1, 50_000)
        elif roll < 0.9:
            amount = rng.randint(150_000, 600_000)  # over class IV's single-payment limit
        else:
            amount = rng.randint(5_000_001, 10**8)  # over class II's limit / anyone's funds
        plan.append((payer, payee.wallet_id, amount))

    def pay(item: tuple[Any, str, int]) -> tuple[str, str, int, str, str | None]:
        payer, payee, amount = item
        try:
            receipt = payer.pay(payee, amount)
        except RemoteError as exc:
            return payer.wallet_id, payee, amount, "refused", exc.code
        return payer.wallet_id, payee, amount, "accepted", receipt.payment_id

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(pay, plan))

    outcomes = Counter(r[3] for r in results)
    refusals = Counter(r[4] for r in results if r[3] == "refused")
    assert set(refusals) <= EXPECTED_REFUSALS, refusals
    assert outcomes["accepted"] > PAYMENTS // 2 and outcomes["refused"] > 0, outcomes

    drain(network, timeout=60)

    expected = dict(start)
    statuses: Counter[str] = Counter()
    cross = 0
    for payer_id, payee_id, amount, outcome, payment_id in results:
        if outcome != "accepted":
            continue
        final = network.staff(payer_id[:4]).request("GET", f"/v1/payments/{payment_id}")
        statuses[final["status"]] += 1
        cross += final["route"] == "cross"
        assert final["status"] in ("completed", "delivered", "returned"), final
        if final["status"] != "returned":
            expected[payer_id] -= amount
            expected[payee_id] += amount
    assert cross > 0 and statuses["completed"] > 0 and statuses["delivered"] > 0, statuses

    actual = {wallet_id: w.balance().balance for wallet_id, w in by_id.items()}
    assert actual == expected
    assert sum(actual.values()) == sum(start.values())

    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["ok"], [c for c in central["checks"] if not c["ok"]]
    held = 0
    for code in CODES:
        report = network.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], [c for c in report["checks"] if not c["ok"]]
        assert report["failed_jobs"] == []
        assert report["in_transit_total"] == 0
        assert report["outbox"].get("pending", 0) == 0
        assert central["operators"][code]["live_token_value"] == report["vault_token_value"]
        held += report["vault_float"] + report["wallets"] + report["in_transit_total"]
        assert report["wallets"] == sum(v for k, v in actual.items() if k.startswith(code))
    assert held == central["issued"] - central["redeemed"] == central["live_token_value"]


def test_the_same_signed_order_sent_in_parallel_moves_money_once(network: Any) -> None:
    payer = network.open_wallet("BKA1", deposit=100_000, load=100_000)
    payer.operator.info()
    payees = [network.open_wallet("BKA1"), network.open_wallet("BKB1")]
    for payee in payees:
        signed = sign_order(
            payer.key,
            payment_order(
                payer=payer.wallet_id, payee=payee.wallet_id, amount=1_000, currency="CNY"
            ),
        )
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            receipts = list(pool.map(payer.submit, [signed] * WORKERS))
        assert len({r.payment_id for r in receipts}) == 1
        assert sorted(r.replayed for r in receipts) == [False] + [True] * (WORKERS - 1)
    drain(network, timeout=60)
    assert payer.balance().balance == 100_000 - 2 * 1_000
    assert [p.balance().balance for p in payees] == [1_000, 1_000]


def test_parallel_spends_of_one_token_at_the_central_bank(network: Any) -> None:
    """The registration centre lets exactly one of several concurrent spends of a token
    through; the others are double spends."""
    client = SignedClient(
        network.cb,
        key=network.operator_keys["BKA1"],
        key_id="operator:BKA1",
        server_public_key=network.cb_key.public_key,
    )
    token = client.request(
        "POST", "/v1/issuance", {"amount": 1_000}, idempotency_key=str(uuid.uuid4())
    )["tokens"][0]

    def spend(i: int) -> str:
        body: dict[str, Any]
        if i % 2:
            path, body = (
                "/v1/settlements",
                {
                    "payee_operator": "BKB1",
                    "amount": 1_000,
                    "serials": [token["serial"]],
                    "reference": f"r{i}",
                },
            )
        else:
            path, body = "/v1/tokens/split", {"serials": [token["serial"]], "outputs": [500, 500]}
        try:
            client.request("POST", path, body, idempotency_key=str(uuid.uuid4()))
        except RemoteError as exc:
            return exc.code
        return "ok"

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        outcomes = Counter(pool.map(spend, range(WORKERS * 2)))
    assert outcomes == {"ok": 1, "double_spend": WORKERS * 2 - 1}
    audit = network.admin.request("GET", "/v1/admin/audit")
    assert audit["ok"] and audit["live_token_value"] == 1_000


def test_the_same_idempotency_key_in_parallel_issues_once(network: Any) -> None:
    client = SignedClient(
        network.cb,
        key=network.operator_keys["BKB1"],
        key_id="operator:BKB1",
        server_public_key=network.cb_key.public_key,
    )
    key = str(uuid.uuid4())
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        answers = list(
            pool.map(
                lambda _: client.request(
                    "POST", "/v1/issuance", {"amount": 2_500}, idempotency_key=key
                ),
                range(WORKERS),
            )
        )
    assert len({a["operation_id"] for a in answers}) == 1
    assert sorted(a["replayed"] for a in answers) == [False] + [True] * (WORKERS - 1)
    audit = network.admin.request("GET", "/v1/admin/audit")
    assert audit["ok"] and audit["issued"] == 2_500

    # a staff cash load at an operator, same key from several threads: loaded once
    wallet = network.open_wallet("BKB1")
    staff = network.staff("BKB1")
    cash_key = str(uuid.uuid4())
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        loads = list(
            pool.map(
                lambda _: staff.request(
                    "POST",
                    f"/v1/admin/wallets/{wallet.wallet_id}/cash-load",
                    {"amount": 7_00},
                    idempotency_key=cash_key,
                ),
                range(WORKERS),
            )
        )
    assert sorted(a["replayed"] for a in loads) == [False] + [True] * (WORKERS - 1)
    assert wallet.balance().balance == 7_00
