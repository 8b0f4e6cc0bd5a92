"""Adversarial: concurrent requests and transactions forced to interleave."""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text

from cbdc.crypto import SigningKey
from cbdc.db import transaction
from cbdc.envelope import operator_audience, sign_request
from cbdc.http import RemoteError
from cbdc.policy import WalletClass, load_policy, with_overrides
from operators.payments import payment_sql, signed_batch
from operators.settlement import rtgs
from operators.wallets import repository as wallet_repo
from operators.wallets import service
from tests.adversarial.helpers import assert_tiers_agree, drain, set_operator_status
from wallets.orders import payment_order, sign_order


def test_refused_cash_load_cannot_be_replayed_later(network: Any) -> None:
    """BUG (replay of a staff request moves money): operators/api.py `cash_load` records the
    envelope nonce inside the work run by `state.with_float(...)` with principal=None, so when
    the cash load is refused with a domain error (here `balance_cap_exceeded`) the rollback
    also drops the nonce (and no idempotency record is kept). docs/architecture.md: "if the
    request fails with a domain error the nonce is still stored, so a refused request cannot be
    replayed later". Replaying the exact captured request once the wallet has room loads it:
    banknotes are booked that were never handed over. Correct: 409 `replayed_request`."""
    wallet = network.open_wallet("BKA1", deposit=10_000_00, load=10_000_00)  # at the IV cap
    path = f"/v1/admin/wallets/{wallet.wallet_id}/cash-load"
    raw = json.dumps({"amount": 100_00}).encode()
    headers = {
        **sign_request(
            network.operator_keys["BKA1"],
            "operator:BKA1",
            "POST",
            path,
            raw,
            audience=operator_audience("BKA1"),
            idempotency_key=f"cash-{uuid.uuid4()}",
        ),
        "content-type": "application/json",
    }
    http = network.operator_http["BKA1"]
    first = http.post(path, content=raw, headers=headers)
    assert (first.status_code, first.json()["code"]) == (422, "balance_cap_exceeded")
    wallet.unload(500_00)
    again = http.post(path, content=raw, headers=headers)  # the same signed request, replayed
    assert again.status_code == 409 and again.json()["code"] == "replayed_request", again.json()
    assert wallet.balance().balance == 9_500_00


def test_the_same_refused_order_sent_twice_in_parallel_never_gets_a_500(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BUG (500): operators/api.py `_refusals_recorded` -> orders.record_refused_order does
    find_order() then INSERT without a lock or ON CONFLICT. Two concurrent sends of the same
    refused order both find no row and both insert: the second hits the unique
    (wallet_id, nonce) constraint and the IntegrityError escapes as a 500. The two threads are
    made to meet right before the insert. Correct: both get a 4xx (`insufficient_funds` or
    `order_already_refused`)."""
    payer = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    payee = network.open_wallet("BKA1")
    payer.operator.info()
    signed = sign_order(
        payer.key,
        payment_order(
            payer=payer.wallet_id, payee=payee.wallet_id, amount=1_000_00, currency="CNY"
        ),
    )
    barrier = threading.Barrier(2, timeout=3)
    real_add_order = wallet_repo.add_order

    def add_order(session: Any, order: Any) -> Any:
        if order.status == "failed":
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
        return real_add_order(session, order)

    monkeypatch.setattr(wallet_repo, "add_order", add_order)

    def send(_: int) -> str:
        try:
            payer.submit(signed)
        except RemoteError as exc:
            return exc.code
        except Exception as exc:  # a 500 re-raised by the test client
            return f"500 {type(exc).__name__}"
        return "accepted"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(send, range(2)))
    assert set(outcomes) <= {"insufficient_funds", "order_already_refused"}, outcomes
    assert payer.balance().balance == 100_00


def test_opening_two_wallets_with_one_key_in_parallel_never_gets_a_500(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BUG (500): operators/wallets/service.py `open_wallet` checks `public_key_in_use` and inserts
    later, with no lock; two concurrent self-service openings with the same key both pass the
    check, and the second INSERT violates wallets.public_key UNIQUE -> IntegrityError -> 500.
    The threads meet right after the check. Correct: one 201, the other 409 `conflict`."""
    key = SigningKey.generate()
    barrier = threading.Barrier(2, timeout=3)
    real_in_use = wallet_repo.public_key_in_use

    def in_use(session: Any, public_key: str) -> bool:
        found = real_in_use(session, public_key)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return found

    monkeypatch.setattr(wallet_repo, "public_key_in_use", in_use)
    operator = network.operator("BKA1")
    operator.info()

    def open_one(_: int) -> str:
        try:
            operator.open_wallet(display_name="Twin", phone="+8613800000000", key=key)
        except RemoteError as exc:
            return exc.code
        except Exception as exc:  # a 500 re-raised by the test client
            return f"500 {type(exc).__name__}"
        return "opened"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(open_one, range(2)))
    assert outcomes == ["conflict", "opened"], outcomes


def test_a_refund_does_not_erase_a_concurrent_payment_from_the_spend_counters(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BUG (limit bypass, lost update): operators/settlement/delivery.py `refund_settlement` loaded
    the payer's wallet BEFORE locking its account and keeps it in a local variable;
    `limits.unspend` then gets that same identity-mapped (stale) object back from
    `session.get` and writes counters computed from it with an absolute UPDATE. Interleaving:
    a cross-operator payment of 1,000.00 is refused by the central bank (payee operator
    suspended); between the refund's wallet read and its lock the payer makes another payment
    of 2,000.00 (committed: spent_today = 3,000.00); the refund writes 1,000.00 - 1,000.00 = 0.
    The 2,000.00 payment vanishes from the daily/annual counters, so the payer can exceed its
    class limits. (The `receive` return path reads the wallet the same way but currently gets a
    fresh row only because the first object is garbage-collected before `unspend`.)
    Correct: after the refund, spent_today == 2,000.00."""
    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    other = network.open_wallet("BKA1")
    payee = network.open_wallet("BKB1")
    state = network.state("BKA1")
    real_wallet_accounts = wallet_repo.wallet_accounts
    real_apply = rtgs.apply
    armed = {"on": False, "fired": False}

    # Batched gross settlement refunds refused items in `rtgs.apply`: the payer's account id
    # is read (wallet_repo.wallet_accounts), then its account locked, then `unspend` runs.
    def wallet_accounts(session: Any, wallet_ids: Any) -> Any:
        found = real_wallet_accounts(session, wallet_ids)
        if armed["on"] and payer.wallet_id in wallet_ids:
            armed["on"], armed["fired"] = False, True  # read, not yet locked: pay now
            order = payment_order(
                payer=payer.wallet_id, payee=other.wallet_id, amount=2_000_00, currency="CNY"
            )
            signature = payer.key.sign_json(order)
            paid = transaction(
                state.factory,
                lambda s: signed_batch.pay_signed(s, state.ctx, items=[(order, signature)]),
            )
            assert paid[0]["ok"], paid
        return found

    def apply(session: Any, ctx: Any, **kwargs: Any) -> Any:
        armed["on"] = not armed["fired"]
        try:
            return real_apply(session, ctx, **kwargs)
        finally:
            armed["on"] = False

    monkeypatch.setattr(wallet_repo, "wallet_accounts", wallet_accounts)
    monkeypatch.setattr(rtgs, "apply", apply)
    set_operator_status(network, "BKB1", "suspended")
    try:
        receipt = payer.pay(payee.wallet_id, 1_000_00)
    finally:
        set_operator_status(network, "BKB1", "active")
        monkeypatch.setattr(wallet_repo, "wallet_accounts", real_wallet_accounts)
    assert armed["fired"], "the refund never read the payer's wallet"
    assert receipt.status == "failed" and receipt.failure == "operator_suspended"
    info = payer.balance()
    assert info.balance == 3_000_00
    assert info.spent_today == 2_000_00


def downgrade_to_iv(state: Any, wallet_id: str) -> None:
    """Staff move a wallet to class IV, committed at once."""
    transaction(
        state.factory,
        lambda s: service.change_class(
            s,
            state.ctx,
            wallet_id=wallet_id,
            wallet_class=WalletClass.IV,
            customer=None,
            by_staff=True,
        ),
    )


@contextlib.contextmanager
def between_read_and_lock(
    monkeypatch: pytest.MonkeyPatch, wallet_id: str, action: Any
) -> Iterator[dict[str, bool]]:
    """Run `action` once (committed) after the payment path has read the account ids of a
    payment naming `wallet_id` and before it locks them: the window where a stale read would
    bite. Wallet class, status and counters must be read after the lock."""
    real = payment_sql.read_batch  # reads the account ids in its lock statement
    armed = {"on": True}

    def read_batch(session: Any, wallet_ids: Any, **kwargs: Any) -> Any:
        if armed["on"] and wallet_id in wallet_ids:
            armed["on"] = False
            action()
        return real(session, wallet_ids, **kwargs)

    monkeypatch.setattr(payment_sql, "read_batch", read_batch)
    try:
        yield armed
    finally:
        monkeypatch.setattr(payment_sql, "read_batch", real)


def test_a_payee_downgraded_during_a_payment_is_not_credited_over_its_new_cap(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BUG (balance cap bypassed), found in the first single-payment path: it read the payee's
    wallet row (class) before locking the payee's account and never refreshed it. Interleaving:
    the payee's downgrade II -> IV commits between that read and the lock (allowed: its balance
    is exactly IV's cap); the payment then checked the cap of the stale class II and credited.
    Payments now run on the batch path, which reads only account ids before the lock
    (`batch.wallet_accounts`) and the wallets' class and status after it: the downgrade is
    injected right there. Correct: the payment is refused with `payee_balance_cap_exceeded`."""
    payer = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    payee = network.open_wallet("BKA1", wallet_class="II", deposit=10_000_00, load=10_000_00)
    state = network.state("BKA1")
    downgrade = functools.partial(downgrade_to_iv, state, payee.wallet_id)
    with (
        between_read_and_lock(monkeypatch, payee.wallet_id, downgrade) as armed,
        pytest.raises(RemoteError) as refused,
    ):
        payer.pay(payee.wallet_id, 50_00)
    assert refused.value.code == "payee_balance_cap_exceeded"
    assert not armed["on"]
    info = payee.balance()
    assert info.wallet_class == "IV"
    assert info.balance <= info.limits.balance_cap, (info.balance, info.limits.balance_cap)


def test_a_return_for_a_payment_that_was_already_refunded_is_rejected(network: Any) -> None:
    """BUG (double refund, order status rewritten): operators/settlement/delivery.py `receive` /
    `_refund_target` accept a `return` for any local payment order: they do not check that the
    order was sent to the returning operator, that it is still `settled`, or that the amount
    matches. Here the payment was refused by the central bank and refunded (`failed`); BKB1
    then delivers a genuine central-bank settlement marked as its return: BKA1 refunds the
    payer a second time and rewrites the order to `returned`. Correct: 409
    `settlement_rejected`; the payer is refunded once."""
    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    set_operator_status(network, "BKB1", "suspended")
    receipt = payer.pay(payee.wallet_id, 1_000_00)
    set_operator_status(network, "BKB1", "active")
    assert receipt.status == "failed" and payer.balance().balance == 5_000_00

    b = network.state("BKB1")
    issued = network.staff("BKB1").request(
        "POST", "/v1/admin/vault/issue", {"amount": 1_000_00}, idempotency_key=f"k-{uuid.uuid4()}"
    )
    assert issued["status"] == "done"
    with b.factory() as s:
        serial = str(
            s.execute(
                text("SELECT serial FROM vault_tokens WHERE status = 'held' LIMIT 1")
            ).scalar_one()
        )
    settled = b.ctx.central_bank.settle(
        payee_operator="BKA1", amount=1_000_00, serials=[serial], reference=f"return:{uuid.uuid4()}"
    )
    body = {
        "kind": "return",
        "reference": receipt.payment_id,
        "payee_wallet": payee.wallet_id,
        "payer_alias": None,
        "reason": "unknown_wallet",
        "receipt": settled["receipt"],
        "payee_tokens": settled["payee_tokens"],
    }
    peer = b.ctx.peers.client("BKA1")
    assert peer is not None
    with pytest.raises(RemoteError) as caught:
        peer.request("POST", "/v1/interop/settlements", body)
    assert caught.value.code == "settlement_rejected"
    assert payer.balance().balance == 5_000_00
    assert payer.payment(receipt.payment_id).status == "failed"


def test_redemptions_racing_cross_operator_settlements_conserve_money(network: Any) -> None:
    """Verified: staff redemptions and water-mark redemptions run while cross-operator
    payments reserve the same vault tokens; every payment ends delivered, the redemptions
    complete, and both tiers agree."""
    payers = [network.open_wallet("BKA1", deposit=2_000_00, load=2_000_00) for _ in range(3)]
    payee = network.open_wallet("BKB1")
    for p in payers:
        p.operator.info()
    staff = network.staff("BKA1")

    def pay(i: int) -> str:
        return payers[i % 3].pay(payee.wallet_id, 100_00 + i).status

    def redeem(i: int) -> str:
        return staff.request(
            "POST",
            "/v1/admin/vault/redeem",
            {"amount": 50_000_00 + i},
            idempotency_key=f"r-{uuid.uuid4()}",
        )["status"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        pays = [pool.submit(pay, i) for i in range(9)]
        redeems = [pool.submit(redeem, i) for i in range(3)]
        statuses = [f.result() for f in pays]
        redeemed = [f.result() for f in redeems]
    drain(network)
    assert set(redeemed) <= {"done", "pending"}
    assert statuses.count("delivered") + statuses.count("pending_settlement") == 9
    assert payee.balance().balance == sum(100_00 + i for i in range(9))
    assert_tiers_agree(network)


def test_payer_downgraded_during_a_payment_gets_the_new_limits(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verified: `pay` refreshes the payer's wallet after locking its account, so a downgrade
    that commits between the payer's read and the lock applies to the payment (class IV's
    2,000.00 single-payment limit refuses 2,500.00)."""
    payer = network.open_wallet("BKA1", wallet_class="II", deposit=3_000_00, load=3_000_00)
    payee = network.open_wallet("BKA1")
    state = network.state("BKA1")
    downgrade = functools.partial(downgrade_to_iv, state, payer.wallet_id)
    with (
        between_read_and_lock(monkeypatch, payer.wallet_id, downgrade) as armed,
        pytest.raises(RemoteError) as caught,
    ):
        payer.pay(payee.wallet_id, 2_500_00)
    assert caught.value.code == "single_payment_limit_exceeded"
    assert not armed["on"] and payer.balance().balance == 3_000_00


SWEEP = with_overrides(load_policy(None, 2), overflow="sweep")


@pytest.mark.parametrize("network", [SWEEP], indirect=True, ids=["sweep"])
def test_waterfall_sweep_and_a_load_on_the_same_wallet_keep_it_under_its_cap(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verified (sweep policy): a load that commits between a payment's read of the payee and
    its lock is seen by the payment, which sweeps exactly the excess over the cap to the
    payee's deposit; threads paying and loading the same wallet at once also end under the cap
    with money conserved (deadlocks between the sweep's locks and the load's are retried)."""
    payer = network.open_wallet("BKA1", wallet_class="II", deposit=20_000_00, load=20_000_00)
    payee = network.open_wallet("BKA1", deposit=20_000_00, load=8_000_00)  # class IV, cap 10k
    load_once = functools.partial(payee.load, 1_500_00)  # balance 9,500.00, before the lock
    with between_read_and_lock(monkeypatch, payee.wallet_id, load_once) as armed:
        assert payer.pay(payee.wallet_id, 1_000_00).status == "completed"
    assert not armed["on"]
    info = payee.balance()
    assert (info.balance, info.deposit_balance) == (10_000_00, 12_000_00 - 1_500_00 + 500_00)

    payee.unload(5_000_00)
    payer.operator.info()

    def pay(_: int) -> str:
        return payer.pay(payee.wallet_id, 700_00).status

    def load(_: int) -> str:
        try:
            return payee.load(600_00).status
        except RemoteError as exc:
            return exc.code

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(pay, i) for i in range(6)] + [pool.submit(load, i) for i in range(6)]
        outcomes = [f.result() for f in futures]
    assert set(outcomes) <= {"completed", "balance_cap_exceeded"}, outcomes
    info = payee.balance()
    assert info.balance <= 10_000_00
    assert info.balance + info.deposit_balance == 20_000_00 + 1_000_00 + 6 * 700_00
