"""Edges a review of escrow and scheduled payments found: nonces reserved for the operator's
own orders (a payer cannot take a schedule execution's nonce), the job runner's sweeps going
on past one schedule or escrow that fails unexpectedly, and a release monitored (AML) like the
payment it is."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cbdc.policy import load_policy, with_overrides
from operators.errors import NonceReserved
from operators.programmable import escrow_jobs, schedules_run
from tests.clocks import operator_clock
from tests.helpers import audits_ok, refused
from tests.programmable.escrow_helpers import at, post, signed_escrow
from tests.programmable.schedule_helpers import signed_schedule
from wallets.orders import payment_order, sign_order


def test_payer_cannot_take_an_executions_nonce(network: Any) -> None:
    clock = operator_clock(network)
    alice = network.open_wallet("BKA1", load=100_00)
    bob = network.open_wallet("BKA1")
    schedule = alice.schedule_payment(bob.wallet_id, 5_00, first_at=at(clock, 60))
    nonce = f"sched:{schedule.schedule_id}:1"
    refused(lambda: alice.pay(bob.wallet_id, 1_00, nonce=nonce), 422, "nonce_reserved")
    signed = sign_order(
        alice.key,
        payment_order(
            payer=alice.wallet_id, payee=bob.wallet_id, amount=1_00, currency="CNY", nonce=nonce
        ),
    )
    batch = network.operator_http["BKA1"].post("/v1/payments/batch", json={"orders": [signed]})
    assert batch.json()["results"][0]["problem"]["code"] == "nonce_reserved"
    # other signed orders of the wallet's nonce space, and escrow's own payment nonces
    refused(
        lambda: alice.load(1_00, nonce=f"sched:{schedule.schedule_id}:2"), 422, "nonce_reserved"
    )
    escrow = signed_escrow(alice, bob.wallet_id, 1_00, deadline=at(clock, 600), nonce="escrow:x1")
    response = post(network, "BKA1", "/v1/escrows", escrow)
    assert (response.status_code, response.json()["code"]) == (422, "nonce_reserved")
    clock.advance(61)
    network.run_jobs()
    [execution] = alice.schedule(schedule.schedule_id).executions
    assert (execution.outcome, execution.payment_status) == ("paid", "completed")
    assert (alice.balance().balance, bob.balance().balance) == (95_00, 5_00)
    audits_ok(network)


def test_reserved_nonce_is_refused_before_anything_else() -> None:
    from datetime import UTC, datetime

    from operators.payments.orders import check_signed_order, record_refused_order

    class Nobody:
        public_key = "not a key"

    with pytest.raises(NonceReserved):
        check_signed_order(
            Nobody(),  # type: ignore[arg-type]
            {"nonce": "sched:abc:1", "created_at": "x"},
            "sig",
            now=datetime.now(UTC),
        )
    # a refusal is never kept under a reserved nonce (no session is even touched)
    record_refused_order(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        kind="payment",
        order={"nonce": "sched:abc:1", "payer": "x"},
        signature="sig",
        failure="insufficient_funds",
    )


def test_a_failing_schedule_does_not_hold_the_others_back(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = operator_clock(network)
    alice = network.open_wallet("BKA1", load=100_00)
    carol = network.open_wallet("BKA1", load=100_00)
    bob = network.open_wallet("BKA1")
    broken = alice.schedule_payment(bob.wallet_id, 1_00, first_at=at(clock, 60))
    fine = carol.schedule_payment(bob.wallet_id, 2_00, first_at=at(clock, 120))
    real = schedules_run.pay_many

    def pay_many(session: Any, ctx: Any, instructions: Any, **kw: Any) -> Any:
        if instructions[0].payer == alice.wallet_id:
            raise RuntimeError("a bug in one schedule's execution")
        return real(session, ctx, instructions, **kw)

    monkeypatch.setattr(schedules_run, "pay_many", pay_many)
    clock.advance(121)
    network.run_jobs()
    assert alice.schedule(broken.schedule_id).executed == 0  # rolled back, not counted
    done = carol.schedule(fine.schedule_id)
    assert (done.status, done.executed) == ("completed", 1)
    assert bob.balance().balance == 2_00
    # passed over for a while, then tried again (and paid once it works)
    monkeypatch.setattr(schedules_run, "pay_many", real)
    network.run_jobs()
    assert alice.schedule(broken.schedule_id).executed == 0
    schedules_run._failing.pop(uuid.UUID(broken.schedule_id))
    network.run_jobs()
    assert alice.schedule(broken.schedule_id).status == "completed"
    assert bob.balance().balance == 3_00
    audits_ok(network)


def test_a_failing_escrow_refund_does_not_hold_the_others_back(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = operator_clock(network)
    alice = network.open_wallet("BKA1", load=100_00)
    carol = network.open_wallet("BKA1", load=100_00)
    bob = network.open_wallet("BKA1")
    first = alice.create_escrow(bob.wallet_id, 10_00, deadline=at(clock, 60))
    second = carol.create_escrow(bob.wallet_id, 20_00, deadline=at(clock, 120))
    real = escrow_jobs.give_back

    def give_back(session: Any, ctx: Any, escrow: dict[str, Any], **kw: Any) -> int:
        if str(escrow["id"]) == first.escrow_id:
            raise RuntimeError("a bug in one escrow's refund")
        return real(session, ctx, escrow, **kw)

    monkeypatch.setattr(escrow_jobs, "give_back", give_back)
    clock.advance(121)
    network.run_jobs()
    assert alice.escrow(first.escrow_id).status == "open"
    assert carol.escrow(second.escrow_id).status == "refunded"
    assert carol.balance().balance == 100_00
    monkeypatch.setattr(escrow_jobs, "give_back", real)
    network.run_jobs()
    assert alice.escrow(first.escrow_id).status == "refunded"
    assert alice.balance().balance == 100_00
    audits_ok(network)


QUIET_AML: dict[str, Any] = {
    "large_value": 1_000_00,
    "structuring_count": 10**6,
    "velocity_count": 10**6,
    "fan_count": 10**6,
    "load_unload_min": 10**12,
}


@pytest.mark.parametrize(
    "network", [with_overrides(load_policy(None, 2), **QUIET_AML)], indirect=True
)
def test_a_release_is_monitored_like_a_payment(network: Any) -> None:
    clock = operator_clock(network)
    payer = network.open_wallet("BKA1", load=3_000_00)
    local, remote = network.open_wallet("BKA1"), network.open_wallet("BKB1")
    small = payer.create_escrow(local.wallet_id, 1_000_00 - 1, deadline=at(clock, 600))
    payer.release_escrow(small.escrow_id, 1_000_00 - 1)
    staff = network.staff("BKA1")
    assert staff.request("GET", "/v1/admin/aml/alerts")["alerts"] == []
    for payee in (local, remote):
        escrow = payer.create_escrow(payee.wallet_id, 1_000_00, deadline=at(clock, 600))
        payer.release_escrow(escrow.escrow_id, 1_000_00)
    alerts = staff.request("GET", "/v1/admin/aml/alerts")["alerts"]
    assert (
        sorted((a["rule"], a["wallet_id"], a["amount"]) for a in alerts)
        == [("large_value", payer.wallet_id, 1_000_00)] * 2
    )
    audits_ok(network)


def test_cli_times_beyond_the_calendar_are_bad_parameters() -> None:
    import typer

    from cbdc.clock import utcnow
    from cli.escrow import deadline_of
    from cli.schedule import time_of

    for call in (
        lambda: deadline_of("99999999999d"),
        lambda: deadline_of("9999-12-31T23:59:59-14:00"),
        lambda: time_of("+99999999999999d", utcnow()),
        lambda: time_of("9999-12-31T23:59:59-14:00", utcnow()),
    ):
        with pytest.raises(typer.BadParameter):
            call()


def test_times_beyond_the_calendar_are_refused_not_failed(network: Any) -> None:
    clock = operator_clock(network)
    alice = network.open_wallet("BKA1", load=10_00)
    bob = network.open_wallet("BKA1")
    far = "9999-12-31T23:59:59-14:00"
    escrow = signed_escrow(alice, bob.wallet_id, 1_00, deadline=far)
    response = post(network, "BKA1", "/v1/escrows", escrow)
    assert (response.status_code, response.json()["code"]) == (422, "escrow_bad_deadline")
    schedule = signed_schedule(alice, bob.wallet_id, 1_00, first_at=far, every=60, count=2)
    response = post(network, "BKA1", "/v1/schedules", schedule)
    assert (response.status_code, response.json()["code"]) == (422, "schedule_time_invalid")
    huge = signed_schedule(
        alice, bob.wallet_id, 1_00, first_at=at(clock, 60), every=10**30, count=10**30
    )
    response = post(network, "BKA1", "/v1/schedules", huge)
    assert response.status_code == 422, response.text
    assert alice.schedules() == [] and alice.balance().locked == 0
