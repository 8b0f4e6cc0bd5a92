"""Scheduled payments in process: one-off, recurring with a cap (and catch-up of missed
times), cross-operator, a refused execution followed by a paid one, cancel, and the refusals
at creation. Time is the operators' shifted clock (tests/clocks.py), moved on by hand."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clocks import operator_clock
from tests.helpers import assert_problem, audits_ok, fund, refused
from tests.programmable.schedule_helpers import at, post_schedule, signed_schedule


@pytest.fixture
def parties(network: Any) -> tuple[Any, Any, Any]:
    clock = operator_clock(network)
    alice = network.open_wallet("BKA1", load=100_00, name="Alice")
    bob = network.open_wallet("BKA1", name="Bob")
    return clock, alice, bob


def test_one_off_executes_once_at_its_time(network: Any, parties: Any) -> None:
    clock, alice, bob = parties
    schedule = alice.schedule_payment(bob.wallet_id, 12_34, first_at=at(clock, 600), memo="rent")
    assert (schedule.status, schedule.executed, schedule.count) == ("active", 0, 1)
    assert schedule.order["type"] == "schedule" and schedule.signature
    network.run_jobs()
    assert bob.balance().balance == 0  # not due yet
    clock.advance(601)
    network.run_jobs()
    network.run_jobs()
    assert (alice.balance().balance, bob.balance().balance) == (100_00 - 12_34, 12_34)
    done = alice.schedule(schedule.schedule_id)
    assert (done.status, done.executed, done.next_at) == ("completed", 1, None)
    [execution] = done.executions
    assert (execution.outcome, execution.payment_status) == ("paid", "completed")
    receipt = alice.payment(execution.payment_id)
    assert receipt.amount == 12_34 and receipt.payee == bob.wallet_id
    history = bob.history().items
    assert history[0].amount == 12_34 and history[0].memo == "rent"
    # the same signed order again: the same schedule, nothing new
    again = alice.schedules()
    assert [s.schedule_id for s in again] == [schedule.schedule_id]
    audits_ok(network)


def test_recurring_with_cap_catches_up_missed_times(network: Any, parties: Any) -> None:
    clock, alice, bob = parties
    schedule = alice.schedule_payment(
        bob.wallet_id, 5_00, first_at=at(clock, 60), every=3600, count=3
    )
    clock.advance(61)
    network.run_jobs()
    assert alice.schedule(schedule.schedule_id).executed == 1
    clock.advance(5 * 3600)  # the operator "was down": two missed times, then the cap
    network.run_jobs()
    done = alice.schedule(schedule.schedule_id)
    assert (done.status, done.executed) == ("completed", 3)
    assert [e.n for e in done.executions] == [1, 2, 3]
    assert bob.balance().balance == 15_00
    clock.advance(3600)
    network.run_jobs()
    assert bob.balance().balance == 15_00
    audits_ok(network)


def test_cross_operator_execution_settles(network: Any, parties: Any) -> None:
    clock, alice, _ = parties
    carol = network.open_wallet("BKB1", name="Carol")
    schedule = alice.schedule_payment(carol.wallet_id, 7_00, first_at=at(clock, 120))
    clock.advance(121)
    for _ in range(3):
        network.run_jobs()
    assert carol.balance().balance == 7_00
    [execution] = alice.schedule(schedule.schedule_id).executions
    assert execution.payment_status == "delivered"
    audits_ok(network)


def test_refused_execution_is_recorded_and_the_next_one_pays(network: Any) -> None:
    clock = operator_clock(network)
    alice = network.open_wallet("BKA1", load=3_00)
    bob = network.open_wallet("BKA1")
    schedule = alice.schedule_payment(
        bob.wallet_id, 5_00, first_at=at(clock, 60), every=60, count=2
    )
    clock.advance(61)
    network.run_jobs()
    first = alice.schedule(schedule.schedule_id)
    assert (first.status, first.executed) == ("active", 1)
    [refusal] = first.executions
    assert (refusal.outcome, refusal.failure) == ("refused", "insufficient_funds")
    kept = alice.payment(refusal.payment_id)  # the payer's refused order, under its nonce
    assert (kept.status, kept.failure) == ("failed", "insufficient_funds")
    fund(network, "BKA1", alice, 5_00)
    clock.advance(60)
    network.run_jobs()
    done = alice.schedule(schedule.schedule_id)
    assert [e.outcome for e in done.executions] == ["refused", "paid"]
    assert done.status == "completed" and bob.balance().balance == 5_00
    assert alice.balance().balance == 3_00
    audits_ok(network)


def test_cancel_stops_executions(network: Any, parties: Any) -> None:
    clock, alice, bob = parties
    schedule = alice.schedule_payment(
        bob.wallet_id, 1_00, first_at=at(clock, 60), every=60, count=10
    )
    one_off = alice.schedule_payment(bob.wallet_id, 1_00, first_at=at(clock, 60))
    later = alice.schedule_payment(bob.wallet_id, 1_00, first_at=at(clock, 3600))
    refused(lambda: bob.cancel_schedule(schedule.schedule_id), 404, "unknown_schedule")
    refused(lambda: bob.schedule(schedule.schedule_id), 404, "unknown_schedule")
    clock.advance(61)
    network.run_jobs()
    cancelled = alice.cancel_schedule(schedule.schedule_id)
    assert (cancelled.status, cancelled.executed, cancelled.next_at) == ("cancelled", 1, None)
    assert alice.cancel_schedule(schedule.schedule_id).status == "cancelled"  # idempotent
    # a completed schedule cannot be cancelled; staff may cancel any
    refused(lambda: alice.cancel_schedule(one_off.schedule_id), 409, "schedule_closed")
    staff = network.staff("BKA1").request("POST", f"/v1/schedules/{later.schedule_id}/cancel", {})
    assert staff["status"] == "cancelled"
    clock.advance(7200)
    network.run_jobs()
    assert bob.balance().balance == 2_00  # the first execution and the one-off
    audits_ok(network)


def test_refusals_at_creation(network: Any, parties: Any) -> None:
    clock, alice, bob = parties
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"first_at": at(clock, -1)}, 422, "schedule_time_invalid"),
        ({"first_at": at(clock, 367 * 86400)}, 422, "schedule_time_invalid"),
        ({"first_at": "tomorrow"}, 422, "validation_error"),
        ({"first_at": at(clock, 60), "every": 59, "count": 2}, 422, "schedule_interval_invalid"),
        ({"first_at": at(clock, 60), "every": None, "count": 2}, 422, "schedule_count_invalid"),
        ({"first_at": at(clock, 60), "every": 60, "count": 1001}, 422, "schedule_count_invalid"),
    ]
    for kw, status, code in cases:
        assert_problem(
            post_schedule(network, "BKA1", signed_schedule(alice, bob.wallet_id, 1_00, **kw)),
            status,
            code,
        )
    to_self = signed_schedule(alice, alice.wallet_id, 1_00, first_at=at(clock, 60))
    assert post_schedule(network, "BKA1", to_self).json()["code"] == "self_payment"
    forged = signed_schedule(alice, bob.wallet_id, 1_00, first_at=at(clock, 60))
    forged["order"]["amount"] = 2_00
    assert_problem(post_schedule(network, "BKA1", forged), 401, "bad_signature")
    at_b = signed_schedule(alice, bob.wallet_id, 1_00, first_at=at(clock, 60))
    assert_problem(
        network.operator_http["BKB1"].post("/v1/schedules", json=at_b), 422, "wrong_operator"
    )
    # the nonce is the idempotency key
    signed = signed_schedule(alice, bob.wallet_id, 1_00, first_at=at(clock, 60), nonce="n" * 16)
    first = post_schedule(network, "BKA1", signed).json()
    again = post_schedule(network, "BKA1", signed).json()
    assert again["schedule_id"] == first["schedule_id"] and again["replayed"]
    other = signed_schedule(alice, bob.wallet_id, 2_00, first_at=at(clock, 60), nonce="n" * 16)
    assert_problem(post_schedule(network, "BKA1", other), 409, "idempotency_key_reused")
    assert len(alice.schedules()) == 1  # refusals left nothing behind
