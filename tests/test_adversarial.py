"""Adversarial review: interleavings and inputs the other suites do not exercise.

Every test asserts the CORRECT behaviour. A failing test documents a bug in the product (see
the docstring of each test for the interleaving and what goes wrong); a passing test documents
a property that was checked and holds.

Interleavings are forced deterministically, not by timing: a repository function is wrapped so
that, at the exact point of interest inside one transaction, another complete transaction runs
(or two threads meet at a barrier); a job is "claimed twice" by expiring its lease between two
claims, which is what happens when a runner's lease runs out while it is still working.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from cbdc.clock import utcnow
from cbdc.crypto import SigningKey
from cbdc.db import transaction
from cbdc.envelope import operator_audience, sign_request
from cbdc.http import RemoteError, SignedClient
from cbdc.policy import WalletClass, load_policy, with_overrides
from operators import payment_sql, rtgs, service, signed_batch, vault
from operators import repository as repo
from operators.models import OutboxJob
from wallets.orders import payment_order, sign_order

CODES = ("BKA1", "BKB1")


# ------------------------------------------------------------------ helpers


def drain(network: Any, timeout: float = 10) -> None:
    """Run every operator's outbox until nothing is pending (jobs retried later included)."""
    deadline = time.monotonic() + timeout
    while True:
        network.run_jobs()
        pending = 0
        for code in CODES:
            with network.state(code).factory() as s:
                pending += s.execute(
                    text("SELECT count(*) FROM outbox WHERE status = 'pending'")
                ).scalar_one()
        if not pending or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def positions(network: Any) -> dict[str, tuple[int, int]]:
    """Per operator: (value the central bank registers to it, value its vault holds)."""
    central = network.admin.request("GET", "/v1/admin/audit")
    out = {}
    for code in CODES:
        report = network.staff(code).request("GET", "/v1/admin/audit")
        out[code] = (central["operators"][code]["live_token_value"], report["vault_token_value"])
    return out


def assert_tiers_agree(network: Any) -> None:
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["ok"], [c for c in central["checks"] if not c["ok"]]
    for code in CODES:
        report = network.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], [c for c in report["checks"] if not c["ok"]]
    for code, (registered, held) in positions(network).items():
        assert registered == held, f"{code}: registered {registered}, vault holds {held}"


def set_operator_status(network: Any, code: str, status: str) -> None:
    with network.cb_app.state.cb.engine.begin() as conn:
        conn.execute(
            text("UPDATE operators SET status = :s WHERE code = :c"), {"s": status, "c": code}
        )


def claim_twice(network: Any, code: str, reference: str) -> tuple[Any, Any]:
    """Two runners hold the same job: the first claim's lease runs out (simulated by moving
    next_attempt_at back to now) and a second runner claims it while the first still works."""
    state = network.state(code)

    def claim(s: Any) -> list[Any]:
        return repo.claim_jobs(s, limit=5, lease_seconds=30, reference=reference)

    first = state.runner.tx(claim)
    assert len(first) == 1, first
    with state.engine.begin() as conn:
        conn.execute(
            text("UPDATE outbox SET next_attempt_at = now() WHERE reference = :r"), {"r": reference}
        )
    second = state.runner.tx(claim)
    assert len(second) == 1 and second[0].id == first[0].id
    return first[0], second[0]


def settle_batch_claimed_twice(network: Any, code: str) -> tuple[Any, Any]:
    """Batched gross settlement: gather the queued payments into their `rtgs_settle` job (as
    the settler does), then let two runners hold that job (`claim_twice`)."""
    state = network.state(code)
    gathered = state.runner.tx(lambda s: rtgs.gather(s, own=True))
    assert len(gathered) == 1, gathered
    with state.engine.begin() as conn:
        reference = conn.execute(
            text("UPDATE outbox SET next_attempt_at = now() WHERE id = :i RETURNING reference"),
            {"i": gathered[0].id},
        ).scalar_one()
    return claim_twice(network, code, reference)


def job(network: Any, code: str, reference: str, kind: str) -> dict[str, Any]:
    with network.state(code).factory() as s:
        row = (
            s.execute(
                text(
                    "SELECT status, last_error, attempts FROM outbox WHERE reference = :r "
                    "AND kind = :k"
                ),
                {"r": reference, "k": kind},
            )
            .mappings()
            .one()
        )
    return dict(row)


class LossyTransport(httpx.BaseTransport):
    """Forwards to the real service; for the first `lose` requests to `path` the request is
    processed but the answer is lost (the caller sees a timeout)."""

    def __init__(self, inner: httpx.BaseTransport, path: str, *, lose: int) -> None:
        self.inner, self.path, self.lose, self.lost = inner, path, lose, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path and self.lost < self.lose:
            self.lost += 1
            self.inner.handle_request(request).read()
            raise httpx.ReadTimeout("answer lost", request=request)
        return self.inner.handle_request(request)


def deferred(network: Any, code: str) -> None:
    """Leave cross-operator settlement to the outbox (no inline RTGS run in the request), so a
    test can drive the settle job itself."""
    network.state(code).ctx.settlement_mode = "deferred_net"


# ================================================================== findings (bugs)


def test_settlement_retry_after_lost_answer_is_not_refunded_when_operator_is_suspended(
    network: Any,
) -> None:
    """BUG (money created): central_bank/service.py `_idempotent` checks the operator's status
    BEFORE looking up the stored operation. Interleaving: A's settlement is processed by the
    central bank but the answer is lost; A is then suspended; A's outbox retries with the same
    Idempotency-Key and gets 403 `operator_suspended` instead of the stored receipt;
    operators/jobs.py `_settle` treats that as a final refusal and `refund_settlement` refunds
    the payer and releases the (already spent) input token. The central bank has moved the
    value to BKB1, BKA1's vault still counts the spent token, and nobody is ever credited.
    Correct: a replay of a completed operation returns the stored answer (or the operator does
    not treat it as a refusal), so the payment settles and is delivered."""
    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    client = network.state("BKA1").ctx.central_bank.client
    real_http = client.http
    client.http = httpx.Client(
        base_url="http://testserver",
        transport=LossyTransport(network.cb._transport, "/v1/settlements/batch", lose=1),
    )
    try:
        receipt = payer.pay(payee.wallet_id, 1_000_00)
        assert receipt.status == "pending_settlement"
        set_operator_status(network, "BKA1", "suspended")
        time.sleep(0.6)  # the retry is due after 0.5 s
        drain(network, timeout=3)
    finally:
        client.http = real_http
        set_operator_status(network, "BKA1", "active")
    drain(network)
    # the central bank did settle: the payment must not be refunded
    final = payer.payment(receipt.payment_id)
    assert final.status == "delivered", (final.status, final.failure)
    assert (payer.balance().balance, payee.balance().balance) == (4_000_00, 1_000_00)
    assert_tiers_agree(network)


def test_redemption_retry_after_lost_answer_is_not_cancelled_when_operator_is_suspended(
    network: Any,
) -> None:
    """BUG (money duplicated), same root cause as above, redemption flow: the central bank
    redeems (reserves credited, inputs marked redeemed) but the answer is lost; BKA1 is then
    suspended; the retry gets 403 `operator_suspended` and jobs.py `_redemption` calls
    `cancel_redemption`, which puts the amount back into the vault float and releases the
    redeemed token. BKA1 now has its reserves back AND the float, and its vault counts a token
    the registry says is redeemed. Correct: the replay returns the stored redemption."""
    staff = network.staff("BKA1")
    assert (
        staff.request(
            "POST",
            "/v1/admin/vault/issue",
            {"amount": 2_000_00},
            idempotency_key=f"k-{uuid.uuid4()}",
        )["status"]
        == "done"
    )
    client = network.state("BKA1").ctx.central_bank.client
    real_http = client.http
    client.http = httpx.Client(
        base_url="http://testserver",
        transport=LossyTransport(network.cb._transport, "/v1/redemption", lose=1),
    )
    try:
        answer = staff.request(
            "POST",
            "/v1/admin/vault/redeem",
            {"amount": 500_00},
            idempotency_key=f"r-{uuid.uuid4()}",
        )
        assert answer["status"] == "pending"
        set_operator_status(network, "BKA1", "suspended")
        time.sleep(0.6)
        drain(network, timeout=3)
    finally:
        client.http = real_http
        set_operator_status(network, "BKA1", "active")
    drain(network)
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["redeemed"] == 500_00
    assert network.staff("BKA1").request("GET", "/v1/admin/audit")["vault_float"] == 1_500_00
    assert_tiers_agree(network)


def test_stale_settle_run_after_a_refund_does_not_settle_again(network: Any) -> None:
    """BUG (money duplicated): operators/settlement.py `prepare_settlement` (vault.reserve_for)
    and jobs.py `_settle` never check that the job is still pending before calling the central
    bank. Interleaving: runner 1 and runner 2 both hold the settle job (lease expired); runner 1
    gets a refusal (payee operator suspended) and refunds the payer (job failed, tokens
    released); the refusal condition clears; runner 2 re-reserves the released tokens and the
    central bank (which stored nothing for the refused attempt) settles for real;
    `apply_settlement` then sees a finished job and drops the receipt. The payer has the money
    back AND the value has moved to BKB1 at the central bank, while BKA1's vault still counts
    the spent token. Correct: a finished job is never executed again."""
    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    deferred(network, "BKA1")
    receipt = payer.pay(payee.wallet_id, 1_000_00)
    assert receipt.status == "pending_settlement"
    first, second = settle_batch_claimed_twice(network, "BKA1")
    runner = network.state("BKA1").runner

    set_operator_status(network, "BKB1", "suspended")
    runner.run(first)
    assert payer.payment(receipt.payment_id).status == "failed"
    assert payer.balance().balance == 5_000_00  # refunded
    set_operator_status(network, "BKB1", "active")
    runner.run(second)  # the stale runner

    network.state("BKA1").ctx.settlement_mode = "rtgs"
    drain(network)
    assert payer.balance().balance + payee.balance().balance == 5_000_00
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["operators"]["BKB1"]["live_token_value"] == 0, "settled after the refund"
    assert_tiers_agree(network)


def test_stale_settle_run_after_success_leaves_no_tokens_reserved(network: Any) -> None:
    """BUG (vault tokens locked forever, later payments stall): same root cause as above.
    Interleaving: two runners hold the settle job; runner 1 settles and delivers; runner 2's
    `prepare_settlement` finds the original inputs gone and reserves NEW tokens (the change)
    under the finished job's reference; the central bank refuses with
    `idempotency_key_reused`; `refund_settlement` returns early because the job is done,
    without releasing them. The tokens stay `reserved` for a finished job forever; with one
    token in the vault every later cross-operator payment stays `pending_settlement`.
    Correct: no token stays reserved for a finished job; the next payment is delivered."""
    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    deferred(network, "BKA1")
    receipt = payer.pay(payee.wallet_id, 1_000_00)
    first, second = settle_batch_claimed_twice(network, "BKA1")
    runner = network.state("BKA1").runner
    runner.run(first)
    network.run_jobs()  # the delivery, a job of its own
    assert payer.payment(receipt.payment_id).status == "delivered"
    runner.run(second)  # the stale runner
    assert payee.balance().balance == 1_000_00  # delivered once
    network.state("BKA1").ctx.settlement_mode = "rtgs"

    with network.state("BKA1").factory() as s:
        stuck = s.execute(
            text(
                "SELECT count(*) FROM vault_tokens t WHERE t.status = 'reserved' AND NOT EXISTS "
                "(SELECT 1 FROM outbox o WHERE o.reference = t.reserved_for "
                "AND o.status = 'pending')"
            )
        ).scalar_one()
    assert stuck == 0, "tokens reserved for a finished job"
    assert payer.pay(payee.wallet_id, 500_00).status == "delivered"


def test_stale_issuance_run_after_a_refusal_does_not_mint_unrecorded_tokens(
    network: Any,
) -> None:
    """BUG (reserves debited for tokens nobody holds): operators/jobs.py `_issuance` calls the
    central bank without checking the job is still pending. Interleaving: two runners hold an
    issuance job; runner 1 is refused (quota) and marks the job failed; the quota is raised;
    runner 2 asks again with the same Idempotency-Key, the central bank (which stored nothing
    for the refusal) issues, and `apply_issuance` drops the tokens because the job is failed.
    The central bank registers tokens to BKA1 and debited its reserves; BKA1's vault never
    stores them. Correct: a finished job is never executed again (tiers agree)."""
    state = network.state("BKA1")
    network.admin.request("PUT", "/v1/admin/operators/BKA1/quota", {"quota": 0})
    reference = transaction(state.factory, lambda s: vault.queue_issuance(s, 1_000_00))
    first, second = claim_twice(network, "BKA1", reference)
    state.runner.run(first)
    assert job(network, "BKA1", reference, "issuance")["status"] == "failed"
    network.admin.request("PUT", "/v1/admin/operators/BKA1/quota", {"quota": 10**12})
    state.runner.run(second)  # the stale runner
    registered, held = positions(network)["BKA1"]
    assert registered == held == 0


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
        **sign_request(network.operator_keys["BKA1"], "operator:BKA1", "POST", path, raw,
                       audience=operator_audience("BKA1"), idempotency_key=f"cash-{uuid.uuid4()}"),
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
    """BUG (500): operators/api.py `_refusals_recorded` -> service.record_refused_order does
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
    real_add_order = repo.add_order

    def add_order(session: Any, order: Any) -> Any:
        if order.status == "failed":
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
        return real_add_order(session, order)

    monkeypatch.setattr(repo, "add_order", add_order)

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
    """BUG (500): operators/service.py `open_wallet` checks `public_key_in_use` and inserts
    later, with no lock; two concurrent self-service openings with the same key both pass the
    check, and the second INSERT violates wallets.public_key UNIQUE -> IntegrityError -> 500.
    The threads meet right after the check. Correct: one 201, the other 409 `conflict`."""
    key = SigningKey.generate()
    barrier = threading.Barrier(2, timeout=3)
    real_in_use = repo.public_key_in_use

    def in_use(session: Any, public_key: str) -> bool:
        found = real_in_use(session, public_key)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return found

    monkeypatch.setattr(repo, "public_key_in_use", in_use)
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
    """BUG (limit bypass, lost update): operators/settlement.py `refund_settlement` loaded the
    payer's wallet BEFORE locking its account and keeps it in a local variable;
    `service.unspend` then gets that same identity-mapped (stale) object back from
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
    real_wallet_accounts = repo.wallet_accounts
    real_apply = rtgs.apply
    armed = {"on": False, "fired": False}

    # Batched gross settlement refunds refused items in `rtgs.apply`: the payer's account id
    # is read (repo.wallet_accounts), then its account locked, then `unspend` runs.
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

    monkeypatch.setattr(repo, "wallet_accounts", wallet_accounts)
    monkeypatch.setattr(rtgs, "apply", apply)
    set_operator_status(network, "BKB1", "suspended")
    try:
        receipt = payer.pay(payee.wallet_id, 1_000_00)
    finally:
        set_operator_status(network, "BKB1", "active")
        monkeypatch.setattr(repo, "wallet_accounts", real_wallet_accounts)
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
            s, state.ctx, wallet_id=wallet_id, wallet_class=WalletClass.IV, customer=None,
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
    """BUG (double refund, order status rewritten): operators/settlement.py `receive` /
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


def test_a_payment_settles_when_the_vault_value_is_spread_over_many_tokens(
    network: Any,
) -> None:
    """BUG (payment stuck forever): operators/vault.py `reserve_for` takes at most 200 tokens
    (`held_tokens_for_update(limit=200)`) and raises TokensUnavailable otherwise; the job is
    retried every 0.05 s for ever and never fails. A vault whose value is in many small tokens
    (an operator that mostly receives: every inbound payment is one exact token) cannot settle
    a payment larger than its 200 biggest tokens although it holds enough value; the payer's
    money stays in `in_transit_out`. Here BKA1 holds 300.00 as 298 tokens (297 of 1.00 and
    one of 3.00) and a customer pays 250.00 to BKB1. Correct: the payment is delivered (use
    more inputs, or consolidate with /v1/tokens/split)."""
    a = network.state("BKA1")
    staff = network.staff("BKA1")
    assert (
        staff.request(
            "POST", "/v1/admin/vault/issue", {"amount": 300_00}, idempotency_key=f"k-{uuid.uuid4()}"
        )["status"]
        == "done"
    )
    cb = a.ctx.central_bank.client
    with a.factory() as s:
        serial = str(
            s.execute(text("SELECT serial FROM vault_tokens WHERE status = 'held'")).scalar_one()
        )
    remaining = 300_00
    for _ in range(3):  # split into 100-fen tokens at the central bank, keep the vault in step
        outputs = [100] * 99 + [remaining - 99 * 100]
        split = cb.request(
            "POST",
            "/v1/tokens/split",
            {"serials": [serial], "outputs": outputs},
            idempotency_key=f"split-{uuid.uuid4()}",
        )

        def store(s: Any, old: str = serial, tokens: list = split["tokens"]) -> None:
            repo.tokens_gone(s, [old], utcnow())
            repo.add_vault_tokens(s, tokens, via="test-split")

        transaction(a.factory, store)
        remaining -= 99 * 100
        serial = next(t["serial"] for t in split["tokens"] if t["amount"] == remaining)
    payer = network.open_wallet("BKA1", deposit=250_00, load=250_00)
    payee = network.open_wallet("BKB1")
    receipt = payer.pay(payee.wallet_id, 250_00)
    for _ in range(3):
        a.runner.run_reference(f"pay:{receipt.payment_id}", patience=0.2)
    assert payer.payment(receipt.payment_id).status == "delivered", job(
        network, "BKA1", f"pay:{receipt.payment_id}", "settle"
    )


def test_staff_vault_issuance_with_a_long_idempotency_key(network: Any) -> None:
    """BUG (accepted request that can never succeed): the operator accepts an Idempotency-Key
    of up to 100 characters on POST /v1/admin/vault/issue (and /redeem) but forwards
    `issue:<key>` (up to 106 characters) as the central bank's Idempotency-Key, which allows at
    most 100: the job fails with `422 validation_error` from the central bank. Correct: either
    refuse the key up front (4xx) or issue."""
    staff = network.staff("BKA1")
    key = "k" * 100
    try:
        answer = staff.request(
            "POST", "/v1/admin/vault/issue", {"amount": 1_000_00}, idempotency_key=key
        )
    except RemoteError as exc:
        assert exc.status == 422
        return
    assert answer["status"] == "done", answer


def test_a_delivery_refused_for_a_transient_reason_is_retried_not_abandoned(
    network: Any,
) -> None:
    """BUG (money stranded for good): operators/jobs.py `_deliver` fails the job on ANY 4xx
    from the payee's operator, including 401 `unauthenticated`, which says nothing about the
    settlement. Interleaving: A settles a payment at the central bank, the first delivery to
    BKB1 is lost (retried later); meanwhile BKA1 is briefly suspended and BKB1's directory
    cache (30 s) picks that up, so the retry gets 401; the job is marked failed and never
    retried, although BKA1 is active again and BKB1 would now accept. The payer is debited,
    the value sits with BKB1 at the central bank, the payee is never credited. Correct: only a
    verdict on the settlement itself (`settlement_rejected`) is final; the payment is
    delivered once the peer accepts again."""
    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    peer = network.state("BKA1").ctx.peers.client("BKB1")
    directory_b = network.state("BKB1").ctx.central_bank
    assert peer is not None
    real_http = peer.http

    class Unreachable(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("unreachable", request=request)

    peer.http = httpx.Client(base_url="http://BKB1", transport=Unreachable())
    try:
        receipt = payer.pay(payee.wallet_id, 1_000_00)
    finally:
        peer.http = real_http
    assert receipt.status == "settled"
    set_operator_status(network, "BKA1", "suspended")
    directory_b._fetched_at = 0  # BKB1 refreshes its directory while BKA1 is suspended
    directory_b.operator("BKA1")
    time.sleep(0.6)  # the delivery retry is due
    drain(network, timeout=2)
    set_operator_status(network, "BKA1", "active")
    directory_b._fetched_at = 0  # ... and again once BKA1 is active
    directory_b.operator("BKA1")
    time.sleep(0.6)
    drain(network)
    assert payee.balance().balance == 1_000_00, job(
        network, "BKA1", f"pay:{receipt.payment_id}", "deliver"
    )
    assert payer.payment(receipt.payment_id).status == "delivered"


# ================================================================== properties that hold


def test_who_may_read_and_act(network: Any) -> None:
    """Verified: a wallet key cannot read another wallet's payment (404, not revealed), balance
    or history (403), nor change its class; another operator's key gets 403 on staff
    endpoints; a wallet key cannot deliver settlements; the regulator cannot read wallets;
    an operator cannot read another operator's token at the central bank."""
    alice = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    bob = network.open_wallet("BKA1")
    paid = alice.pay(bob.wallet_id, 10_00)

    def refused(call: Any, status: int) -> None:
        with pytest.raises(RemoteError) as caught:
            call()
        assert caught.value.status == status, caught.value.body

    refused(lambda: bob.payment(paid.payment_id), 404)  # even the payee sees no payer order
    refused(lambda: bob.client.request("GET", f"/v1/wallets/{alice.wallet_id}"), 403)
    refused(lambda: bob.client.request("GET", f"/v1/wallets/{alice.wallet_id}/history"), 403)
    refused(
        lambda: bob.client.request(
            "POST", f"/v1/wallets/{alice.wallet_id}/class", {"wallet_class": "IV"}
        ),
        403,
    )
    foreign = SignedClient(
        network.operator_http["BKA1"], key=network.operator_keys["BKB1"], key_id="operator:BKB1"
    )
    refused(lambda: foreign.request("GET", "/v1/admin/audit"), 403)
    refused(lambda: foreign.request("GET", f"/v1/wallets/{alice.wallet_id}"), 403)
    refused(lambda: foreign.request("GET", f"/v1/payments/{paid.payment_id}"), 403)
    refused(
        lambda: foreign.request(
            "POST",
            f"/v1/admin/wallets/{alice.wallet_id}/cash-load",
            {"amount": 1},
            idempotency_key=str(uuid.uuid4()),
        ),
        403,
    )
    refused(
        lambda: alice.client.request(
            "POST",
            "/v1/interop/settlements",
            {
                "receipt": {},
                "payee_tokens": [{}],
                "kind": "payment",
                "reference": "x",
                "payee_wallet": alice.wallet_id,
            },
        ),
        403,
    )
    regulator = SignedClient(
        network.operator_http["BKA1"], key=network.regulator.signing, key_id="regulator"
    )
    refused(lambda: regulator.request("GET", f"/v1/wallets/{alice.wallet_id}"), 403)
    refused(lambda: regulator.request("GET", f"/v1/payments/{paid.payment_id}"), 403)
    with network.state("BKA1").factory() as s:
        serial = str(s.execute(text("SELECT serial FROM vault_tokens LIMIT 1")).scalar_one())
    as_b = SignedClient(
        network.cb,
        key=network.operator_keys["BKB1"],
        key_id="operator:BKB1",
        server_public_key=network.cb_key.public_key,
    )
    refused(lambda: as_b.request("GET", f"/v1/tokens/{serial}"), 403)
    assert alice.balance().balance == 990_00


def test_idempotency_keys_are_bound_to_one_request_across_endpoints(network: Any) -> None:
    """Verified: at the operator, a staff Idempotency-Key used for a deposit credit is refused
    for a cash load (409); a cash load resent with a new envelope nonce and the same key is
    replayed, not repeated; at the central bank a key used for issuance is refused for a
    redemption and for a settlement (the request hash covers the path)."""
    wallet = network.open_wallet("BKA1")
    staff = network.staff("BKA1")
    key = f"k-{uuid.uuid4()}"
    staff.request(
        "POST",
        f"/v1/admin/customers/{wallet.balance().customer_id}/deposit",
        {"amount": 100},
        idempotency_key=key,
    )
    with pytest.raises(RemoteError) as caught:
        staff.request(
            "POST",
            f"/v1/admin/wallets/{wallet.wallet_id}/cash-load",
            {"amount": 100},
            idempotency_key=key,
        )
    assert caught.value.code == "idempotency_key_reused"
    cash_key = f"c-{uuid.uuid4()}"
    for replayed in (False, True, True):
        answer = staff.request(
            "POST",
            f"/v1/admin/wallets/{wallet.wallet_id}/cash-load",
            {"amount": 300},
            idempotency_key=cash_key,
        )
        assert answer["replayed"] is replayed
    assert wallet.balance().balance == 300

    cb = network.state("BKB1").ctx.central_bank.client
    cb_key = f"cb-{uuid.uuid4()}"
    token = cb.request("POST", "/v1/issuance", {"amount": 500}, idempotency_key=cb_key)["tokens"][0]
    for path, body in (
        ("/v1/redemption", {"serials": [token["serial"]], "amount": 500}),
        (
            "/v1/settlements",
            {
                "payee_operator": "BKA1",
                "amount": 500,
                "serials": [token["serial"]],
                "reference": "r",
            },
        ),
    ):
        with pytest.raises(RemoteError) as caught:
            cb.request("POST", path, body, idempotency_key=cb_key)
        assert caught.value.code == "idempotency_key_reused"
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["ok"] and central["operators"]["BKB1"]["live_token_value"] == 500


def test_stale_redemption_and_delivery_runs_are_harmless(network: Any) -> None:
    """Verified: a redemption job held by two runners redeems once (prepare_redemption checks
    the job is pending); a delivery job run again after the payee's operator applied it
    credits once (deduplicated on the settlement id)."""
    payer = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    payee = network.open_wallet("BKB1")
    state = network.state("BKA1")
    reference = transaction(state.factory, lambda s: vault.queue_redemption(s, 2_000_00))
    first, second = claim_twice(network, "BKA1", reference)
    state.runner.run(first)
    state.runner.run(second)
    assert job(network, "BKA1", reference, "redemption")["status"] == "done"
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["redeemed"] == 2_000_00

    receipt = payer.pay(payee.wallet_id, 300_00)
    assert receipt.status == "delivered"
    with state.factory() as s:
        deliver = s.scalars(select(OutboxJob).where(OutboxJob.kind == "rtgs_deliver")).one()
    state.runner.run(deliver)  # a stale delivery run
    assert payee.balance().balance == 300_00
    assert_tiers_agree(network)


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
    load = functools.partial(payee.load, 1_500_00)  # balance 9,500.00, before the lock
    with between_read_and_lock(monkeypatch, payee.wallet_id, load) as armed:
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


def test_odd_inputs_get_4xx_not_500(network: Any) -> None:
    """Verified: huge `before` cursors, NUL bytes in filters, a non-UUID payment id, a payment
    id of another wallet, and a NUL in an order memo all give 4xx."""
    wallet = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    other = network.open_wallet("BKA1")
    staff = network.staff("BKA1")
    cases = [
        lambda: wallet.client.request(
            "GET", f"/v1/wallets/{wallet.wallet_id}/history", params={"before": 2**63}
        ),
        lambda: staff.request("GET", "/v1/admin/aml/alerts", params={"rule": "a\x00b"}),
        lambda: staff.request("GET", "/v1/admin/aml/alerts", params={"wallet": "\x00" * 20}),
        lambda: wallet.client.request("GET", "/v1/payments/not-a-uuid"),
        lambda: wallet.pay(other.wallet_id, 1, memo="nul\x00memo"),
        lambda: network.admin.request(
            "GET", "/v1/analysis/alerts", params={"since": "0001-01-01T00:00:00+14:00"}
        ),
        lambda: network.admin.request("GET", "/v1/analysis/alerts", params={"operator": "\x00"}),
    ]
    for i, case in enumerate(cases):
        try:
            case()
        except RemoteError as exc:
            assert 400 <= exc.status < 500, (i, exc.body)
    assert wallet.balance().balance == 100_00


# ------------------------------------------------------------------ envelope v2 (issue #12)


class ForgedRefusal(httpx.BaseTransport):
    """Between an operator and the central bank: for the first `times` settlements, the caller
    gets a refusal instead of the central bank's answer. `replay`: the settlement is carried out,
    then the same signed request is sent again and the central bank's answer to that replay
    (409 replayed_request) is what the caller gets. Otherwise: a hand-made unsigned 401."""

    def __init__(self, inner: httpx.BaseTransport, *, times: int, replay: bool) -> None:
        self.inner, self.times, self.replay, self.forged = inner, times, replay, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/settlements/batch" or self.forged >= self.times:
            return self.inner.handle_request(request)
        self.forged += 1
        if self.replay:
            request.read()
            self.inner.handle_request(request).read()  # carried out
            refusal = self.inner.handle_request(request)
            refusal.read()
            assert refusal.status_code == 409, refusal.text
            return refusal
        problem = {"type": "about:blank", "title": "Signature does not verify", "status": 401,
                   "detail": "request signature does not verify", "code": "bad_signature"}
        return httpx.Response(401, json=problem,
                              headers={"content-type": "application/problem+json"})


@pytest.mark.parametrize("replay", [True, False], ids=["replayed-after-success", "forged-401"])
def test_a_refusal_the_central_bank_did_not_sign_for_the_request_refunds_nobody(
    network: Any, replay: bool
) -> None:
    """Finding 2: the central bank signed its answer to any request carrying a nonce, over
    status, nonce and body only. Replaying an operator's settlement request once it was carried
    out got a central-bank-signed 409 for that nonce, which the operator's client took for the
    bank's refusal of the settlement: the outbox refunded the payer while the payee's operator
    owned the tokens. Now the answer to a replay (a failed authentication) is unsigned, and an
    unsigned answer, like a forged 401, is no answer: the job is retried (same idempotency key)
    and the payment delivered once, never refunded."""
    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    client = network.state("BKA1").ctx.central_bank.client
    real_http = client.http
    forger = ForgedRefusal(network.cb._transport, times=2, replay=replay)
    client.http = httpx.Client(base_url="http://testserver", transport=forger)
    try:
        receipt = payer.pay(payee.wallet_id, 1_000_00)
        assert receipt.status == "pending_settlement", receipt
        assert payer.balance().balance == 4_000_00  # not refunded
        drain(network)
    finally:
        client.http = real_http
    assert forger.forged == 2
    assert payer.payment(receipt.payment_id).status == "delivered"
    assert payer.balance().balance == 4_000_00
    assert payee.balance().balance == 1_000_00
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["ok"] and central["operators"]["BKB1"]["live_token_value"] == 1_000_00
    for code in CODES:
        report = network.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], [c for c in report["checks"] if not c["ok"]]
        assert central["operators"][code]["live_token_value"] == report["vault_token_value"]


def test_wallet_ids_do_not_reveal_how_many_wallets_were_opened(network: Any) -> None:
    """Finding 7: wallet ids were the operator's sequential account ids, so two ids told how
    many wallets were opened between them and named their neighbours. Now the number is a keyed
    permutation of the account id: consecutive openings are far apart, each operator numbers
    differently, and the numbering stays a permutation (no collisions) over 100,000 accounts."""
    from cbdc.addresses import WalletNumbering, is_valid_wallet_id, wallet_numbering

    first, second = network.open_wallet("BKA1"), network.open_wallet("BKA1")
    numbers = [int(w.wallet_id[4:18]) for w in (first, second)]
    assert abs(numbers[1] - numbers[0]) > 1000, numbers
    with network.state("BKA1").factory() as s:
        accounts = [
            s.execute(text("SELECT account_id FROM wallets WHERE id = :w"),
                      {"w": w.wallet_id}).scalar_one()
            for w in (first, second)
        ]
    assert accounts[1] - accounts[0] < 1000 and numbers != accounts  # sequential inside only
    assert all(is_valid_wallet_id(w.wallet_id) for w in (first, second))

    numbering = wallet_numbering(network.operator_keys["BKA1"].private_bytes())
    assert numbering.wallet_id("BKA1", accounts[0]) == first.wallet_id  # deterministic
    other = wallet_numbering(network.operator_keys["BKB1"].private_bytes())
    assert other.number(accounts[0]) != numbering.number(accounts[0])

    many = {numbering.number(a) for a in range(100_000)}
    assert len(many) == 100_000 and all(0 <= n < 10**14 for n in many)
    ordered = sorted(many)
    gaps = {b - a for a, b in zip(ordered, ordered[1:], strict=False)}
    assert len(gaps) > 90_000  # spread, not a block of consecutive numbers
    with pytest.raises(ValueError):
        numbering.number(10**14)
    with pytest.raises(ValueError):
        WalletNumbering(b"short")


# ------------------------------------- a signed refusal for a settlement that was carried out


class ResendWithHeaderChanged(httpx.BaseTransport):
    """An on-path attacker with no keys, between an operator and the central bank: it forwards
    the operator's first settlement request (the central bank carries it out), then resends the
    very same bytes with one header changed or stripped and hands THAT answer to the operator."""

    def __init__(self, inner: httpx.BaseTransport, alter: Any) -> None:
        self.inner, self.alter = inner, alter
        self.forged: list[tuple[httpx.Request, httpx.Response]] = []
        self.carried_out: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/settlements/batch" or self.forged:
            return self.inner.handle_request(request)
        body = request.read()
        real = self.inner.handle_request(request)
        real.read()
        self.carried_out.append(real.status_code)
        headers = self.alter({k.lower(): v for k, v in request.headers.items()})
        resent = httpx.Request("POST", request.url, headers=headers, content=body)
        answer = self.inner.handle_request(resent)
        content = answer.read()
        self.forged.append((request, answer))
        return httpx.Response(answer.status_code, headers=answer.headers, content=content)


@pytest.mark.parametrize(
    "alter",
    [
        lambda h: {k: v for k, v in h.items() if k != "idempotency-key"},
        lambda h: {**h, "idempotency-key": "x"},
        lambda h: {**h, "content-type": "text/plain"},
    ],
    ids=["idempotency-key-stripped", "idempotency-key-too-short", "content-type-text-plain"],
)
def test_resent_settlement_with_a_header_changed_gets_no_signed_refusal(
    network: Any, alter: Any
) -> None:
    """Review finding 2 (still open after envelope v2): the Idempotency-Key and Content-Type
    headers were not signed, and FastAPI refuses a missing/short key or another content type
    (422) after the signature was verified but before the nonce is recorded. Whoever sees a
    settlement on the wire could resend its bytes so altered and get a 422 the central bank
    SIGNED, which verified as the answer to the original settlement: the payer's operator
    refunded the payer although the central bank had moved the money (money created, the
    audit fails). Correct: the key is signed (stripping or changing it breaks the signature)
    and an answer is signed only when this request consumed its nonce, so every such answer is
    unsigned; the operator retries, the payment is delivered once and the tiers agree."""
    from cbdc.crypto import sha256_hex
    from cbdc.envelope import H_RESPONSE_SIG, RequestBinding, verify_response

    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    client = network.state("BKA1").ctx.central_bank.client
    real_http = client.http
    attacker = ResendWithHeaderChanged(network.cb._transport, alter)
    client.http = httpx.Client(base_url="http://testserver", transport=attacker)
    try:
        receipt = payer.pay(payee.wallet_id, 1_000_00)
        assert attacker.carried_out == [201] and len(attacker.forged) == 1
        sent, answer = attacker.forged[0]
        bound = RequestBinding(
            audience=sent.headers["CBDC-Audience"], method="POST", target="/v1/settlements/batch",
            key_id=sent.headers["CBDC-Key-Id"], nonce=sent.headers["CBDC-Nonce"],
            idempotency_key=sent.headers.get("Idempotency-Key", ""),
            body_sha256=sha256_hex(sent.content),
        )
        assert 400 <= answer.status_code < 500
        assert H_RESPONSE_SIG not in answer.headers, answer.json()
        assert not verify_response(network.cb_key.public_key, bound, answer.status_code,
                                   answer.content, answer.headers.get(H_RESPONSE_SIG, ""))
        # no refusal for the operator: the payment waits and is retried, never refunded
        assert receipt.status == "pending_settlement", receipt
        drain(network)
    finally:
        client.http = real_http
    assert payer.payment(receipt.payment_id).status == "delivered"
    assert payer.balance().balance == 4_000_00
    assert payee.balance().balance == 1_000_00
    assert_tiers_agree(network)
    supply = network.admin.request("GET", "/v1/stats/money-supply")
    assert supply["operations"]["settlement"]["count"] == 1
