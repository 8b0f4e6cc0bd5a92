"""Adversarial: lost answers and jobs claimed twice (a runner's lease ran out mid-work)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select, text

from cbdc.db import transaction
from operators import repository as repo
from operators.models import OutboxJob
from operators.settlement import rtgs
from operators.vault import service as vault
from tests.adversarial.helpers import assert_tiers_agree, drain, job, positions, set_operator_status
from tests.clocks import operator_clock


def claim_twice(network: Any, code: str, reference: str) -> tuple[Any, Any]:
    """Two runners hold the same job: the first claim's lease runs out (the operator's clock
    moves past it) and a second runner claims it while the first still works."""
    state = network.state(code)

    def claim(s: Any) -> list[Any]:
        return repo.claim_jobs(
            s, now=state.ctx.now(), limit=5, lease_seconds=30, reference=reference
        )

    first = state.runner.tx(claim)
    assert len(first) == 1, first
    operator_clock(network).advance(30)  # the lease
    second = state.runner.tx(claim)
    assert len(second) == 1 and second[0].id == first[0].id
    return first[0], second[0]


def settle_batch_claimed_twice(network: Any, code: str) -> tuple[Any, Any]:
    """Batched gross settlement: gather the queued payments into their `rtgs_settle` job (as
    the settler does), then let two runners hold that job (`claim_twice`)."""
    state = network.state(code)
    gathered = state.runner.tx(lambda s: rtgs.gather(s, now=state.ctx.now(), own=True))
    assert len(gathered) == 1, gathered
    operator_clock(network).advance(rtgs.LEASE_SECONDS)  # gathered jobs come leased to the caller
    return claim_twice(network, code, gathered[0].reference)


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
    """BUG (money created): central_bank/operations.py `run_idempotent` checks the operator's status
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
        operator_clock(network).advance(0.6)  # the retry is due after 0.5 s
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
        operator_clock(network).advance(0.6)
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
    """BUG (money duplicated): operators/settlement/delivery.py `prepare_settlement`
    (vault.reserve_for) and jobs.py `_settle` never check that the job is still pending before
    calling the central bank. Interleaving: runner 1 and runner 2 both hold the settle job (lease
    expired); runner 1 gets a refusal (payee operator suspended) and refunds the payer (job failed,
    tokens released); the refusal condition clears; runner 2 re-reserves the released tokens and the
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
    reference = transaction(
        state.factory, lambda s: vault.queue_issuance(s, 1_000_00, now=state.ctx.now())
    )
    first, second = claim_twice(network, "BKA1", reference)
    state.runner.run(first)
    assert job(network, "BKA1", reference, "issuance")["status"] == "failed"
    network.admin.request("PUT", "/v1/admin/operators/BKA1/quota", {"quota": 10**12})
    state.runner.run(second)  # the stale runner
    registered, held = positions(network)["BKA1"]
    assert registered == held == 0


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
    clock = operator_clock(network)
    clock.advance(0.6)  # the delivery retry is due
    drain(network, timeout=2)
    set_operator_status(network, "BKA1", "active")
    directory_b._fetched_at = 0  # ... and again once BKA1 is active
    directory_b.operator("BKA1")
    clock.advance(0.6)
    drain(network)
    assert payee.balance().balance == 1_000_00, job(
        network, "BKA1", f"pay:{receipt.payment_id}", "deliver"
    )
    assert payer.payment(receipt.payment_id).status == "delivered"


def test_stale_redemption_and_delivery_runs_are_harmless(network: Any) -> None:
    """Verified: a redemption job held by two runners redeems once (prepare_redemption checks
    the job is pending); a delivery job run again after the payee's operator applied it
    credits once (deduplicated on the settlement id)."""
    payer = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    payee = network.open_wallet("BKB1")
    state = network.state("BKA1")
    reference = transaction(
        state.factory, lambda s: vault.queue_redemption(s, 2_000_00, now=state.ctx.now())
    )
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
