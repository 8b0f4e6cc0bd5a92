"""The set-based batch payment path (`operators.payments.batch.pay_many`) and bulk
onboarding/exchange (`operators.payments.bulk`), as the scenario engine calls them: the same rules
as single payments, judged in order within a batch, and money conserved when batches run
concurrently with each other and with single payments over HTTP."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cbdc.crypto import SigningKey
from cbdc.http import RemoteError
from cbdc.policy import WalletClass
from operators.payments import batch, bulk
from tests.conftest import VALID_BANK_ACCOUNT, VALID_ID_NUMBER

CLASSES = [WalletClass.IV, WalletClass.III, WalletClass.II]


def _pay(network: Any, code: str, items: list[tuple[str, str, int]], tag: str) -> list[Any]:
    state = network.state(code)
    instructions = [
        batch.Instruction(payer=p, payee=q, amount=a, nonce=f"{tag}-{i}")
        for i, (p, q, a) in enumerate(items)
    ]
    return state.uow.run(None, lambda s: batch.pay_many(s, state.ctx, instructions))  # type: ignore[no-any-return]


def test_batch_applies_single_payment_rules_in_order(network: Any) -> None:
    a = network.open_wallet("BKA1", deposit=3_000_00, load=3_000_00)  # class IV
    b = network.open_wallet("BKA1")
    c = network.open_wallet("BKB1")
    outcomes = _pay(
        network,
        "BKA1",
        [
            (a.wallet_id, b.wallet_id, 1_500_00),  # ok
            (a.wallet_id, b.wallet_id, 1_000_00),  # ok: 2,500 left -> 500
            (a.wallet_id, c.wallet_id, 600_00),  # only 500 left
            (a.wallet_id, b.wallet_id, 2_500_00),  # over class IV single-payment limit
            (a.wallet_id, a.wallet_id, 1_00),  # self payment
            (a.wallet_id, "BKA1XXXX", 1_00),  # not a wallet id
            (c.wallet_id, b.wallet_id, 1_00),  # payer at another operator
            (a.wallet_id, c.wallet_id, 400_00),  # cross-operator, ok
        ],
        "rules",
    )
    codes = [o.code for o in outcomes]
    assert codes == [
        None,
        None,
        "insufficient_funds",
        "single_payment_limit_exceeded",
        "self_payment",
        "invalid_wallet_id",
        "wrong_operator",
        None,
    ]
    assert [o.status for o in outcomes if o.ok] == [
        "completed",
        "completed",
        "pending_settlement",
    ]
    network.run_jobs()
    assert a.balance().balance == 100_00
    assert b.balance().balance == 2_500_00
    assert c.balance().balance == 400_00
    # the day's spending counted the three accepted payments
    assert a.balance().spent_today == 2_900_00
    # a payment of the batch is visible like any other
    status = network.staff("BKA1").request("GET", f"/v1/payments/{outcomes[0].order_id}")
    assert status["status"] == "completed" and status["amount"] == 1_500_00


def test_batch_refuses_over_the_payees_cap_and_counts_limits(network: Any) -> None:
    a = network.open_wallet("BKA1", wallet_class="II", deposit=20_000_00, load=20_000_00)
    b = network.open_wallet("BKA1")  # class IV: cap 10,000
    outcomes = _pay(
        network,
        "BKA1",
        [(a.wallet_id, b.wallet_id, 6_000_00), (a.wallet_id, b.wallet_id, 6_000_00)],
        "cap",
    )
    assert [o.code for o in outcomes] == [None, "payee_balance_cap_exceeded"]
    assert b.balance().balance == 6_000_00


def test_replayed_nonce_in_a_batch_is_not_paid_twice(network: Any) -> None:
    a = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    b = network.open_wallet("BKA1")
    state = network.state("BKA1")
    once = batch.Instruction(payer=a.wallet_id, payee=b.wallet_id, amount=10_00, nonce="n-1")
    outcomes = state.uow.run(None, lambda s: batch.pay_many(s, state.ctx, [once, once]))
    assert [o.code for o in outcomes] == [None, "idempotency_key_reused"]
    assert b.balance().balance == 10_00


def test_bulk_onboarding_and_exchange(network: Any) -> None:
    state = network.state("BKA1")
    ctx = state.ctx
    identity = {
        "display_name": "Sim",
        "phone": "+8613800000000",
        "id_number": VALID_ID_NUMBER,
        "bank_account": VALID_BANK_ACCOUNT,
    }
    people = [bulk.NewCustomer(identity, deposit=50_000_00) for _ in range(3)]
    customers = state.uow.run(None, lambda s: bulk.add_customers(s, ctx, people))
    wallets = state.uow.run(
        None,
        lambda s: bulk.open_wallets(
            s,
            ctx,
            [
                bulk.NewWallet(cid, identity, cls, SigningKey.generate().public_key)
                for cid, cls in zip(customers, CLASSES, strict=True)
            ],
        ),
    )
    network.state("BKA1").replenish(200_000_00)
    outcomes = state.uow.run(
        None,
        lambda s: bulk.exchange_many(
            s,
            ctx,
            "load",
            [
                (wallets[0], 9_000_00),
                (wallets[0], 2_000_00),
                (wallets[1], 15_000_00),
                (wallets[2], 60_000_00),
            ],
        ),
    )
    assert [o.error.code if o.error else None for o in outcomes] == [
        None,
        "balance_cap_exceeded",  # class IV holds at most 10,000
        None,
        "insufficient_funds",  # the deposit holds 50,000
    ]
    out = state.uow.run(
        None, lambda s: bulk.exchange_many(s, ctx, "unload", [(wallets[1], 5_000_00)])
    )
    assert out[0].ok
    info = network.staff("BKA1").request("GET", f"/v1/wallets/{wallets[1]}")
    assert info["balance"] == 10_000_00
    assert info["deposit_balance"] == 40_000_00
    assert info["certificate"]["document"]["wallet_class"] == "III"
    audit = network.staff("BKA1").request("GET", "/v1/admin/audit")
    assert audit["ok"], [c for c in audit["checks"] if not c["ok"]]


def test_concurrent_batches_and_single_payments_conserve_money(network: Any) -> None:
    rng = random.Random(7)
    wallets = {
        code: [
            network.open_wallet(code, wallet_class="II", deposit=100_000_00, load=100_000_00)
            for _ in range(6)
        ]
        for code in ("BKA1", "BKB1")
    }
    for ws in wallets.values():
        for w in ws:
            w.operator.info()
    everyone = [w for ws in wallets.values() for w in ws]
    start = sum(w.balance().balance for w in everyone)

    def a_batch(k: int) -> int:
        code = ("BKA1", "BKB1")[k % 2]
        items = []
        for _ in range(200):
            payer = rng.choice(wallets[code])
            payee = rng.choice(everyone)
            if payee is not payer:
                items.append((payer.wallet_id, payee.wallet_id, rng.randint(1, 40_000_00)))
        return sum(o.ok for o in _pay(network, code, items, f"c{k}"))

    def a_single(k: int) -> int:
        payer, payee = rng.sample(everyone, 2)
        try:
            payer.pay(payee.wallet_id, rng.randint(1, 20_000_00))
        except RemoteError:
            return 0
        return 1

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(a_batch, k) for k in range(8)]
        futures += [pool.submit(a_single, k) for k in range(40)]
        accepted = sum(f.result() for f in futures)
    assert accepted > 100
    for _ in range(5):
        network.run_jobs()
    assert sum(w.balance().balance for w in everyone) == start
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["ok"], [c for c in central["checks"] if not c["ok"]]
    for code in ("BKA1", "BKB1"):
        report = network.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], [c for c in report["checks"] if not c["ok"]]
        assert report["in_transit_total"] == 0
        assert central["operators"][code]["live_token_value"] == report["vault_token_value"]
