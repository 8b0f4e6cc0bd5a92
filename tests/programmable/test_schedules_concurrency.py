"""Scheduled payments run exactly once: several runners sweeping at once (threads), a second
operator process on the same database (a restart: the state is in the database only), and a
cancel racing an execution. Conservation is checked by the audits."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from operators.programmable import schedules, schedules_run
from operators.state import OperatorState
from tests.clocks import operator_clock
from tests.helpers import audits_ok
from tests.programmable.schedule_helpers import at


def _together(*works: Callable[[], Any]) -> list[Any]:
    """Run the works in threads started at one barrier; their results (or exceptions)."""
    barrier = threading.Barrier(len(works))
    results: list[Any] = [None] * len(works)

    def run(i: int, work: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = work()
        except Exception as exc:  # kept for the test to look at
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(works)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_exactly_once_across_runners_and_a_restart(network: Any) -> None:
    clock = operator_clock(network)
    alice = network.open_wallet("BKA1", load=500_00)
    payees = [network.open_wallet("BKA1") for _ in range(3)]
    made = [
        alice.schedule_payment(p.wallet_id, 2_00 + i, first_at=at(clock, 60), every=60, count=4)
        for i, p in enumerate(payees)
    ]
    state = network.state("BKA1")
    # a second operator process on the same database, started after the schedules were made
    restarted = OperatorState(state.config)
    restarted.ctx.clock = clock.now
    try:
        clock.advance(61)
        runners = [state.runner, restarted.runner, state.runner, restarted.runner]
        swept = _together(*[lambda r=r: schedules_run.sweep(r) for r in runners])
        assert all(isinstance(n, int) for n in swept), swept
        assert sum(swept) == 3  # each schedule's first execution, once
        clock.advance(3 * 60)  # three more times each, caught up by whichever runner comes
        swept = _together(*[lambda r=r: schedules_run.sweep(r) for r in runners])
        assert sum(swept) == 9, swept
        assert sum(schedules_run.sweep(r) for r in runners) == 0
    finally:
        restarted.stop()
    for i, (schedule, payee) in enumerate(zip(made, payees, strict=True)):
        done = alice.schedule(schedule.schedule_id)
        assert (done.status, done.executed) == ("completed", 4)
        assert [e.n for e in done.executions] == [1, 2, 3, 4]
        assert all(e.outcome == "paid" for e in done.executions)
        assert payee.balance().balance == 4 * (2_00 + i)
    assert alice.balance().balance == 500_00 - 4 * (2_00 + 2_01 + 2_02)
    audits_ok(network)


def test_cancel_racing_an_execution(network: Any) -> None:
    clock = operator_clock(network)
    alice = network.open_wallet("BKA1", load=100_00)
    bob = network.open_wallet("BKA1")
    made = [
        alice.schedule_payment(bob.wallet_id, 1_00, first_at=at(clock, 60), every=60, count=2)
        for _ in range(6)
    ]
    state = network.state("BKA1")
    clock.advance(61)
    paid = 0
    for schedule in made:
        key = uuid.UUID(schedule.schedule_id)

        def cancel_it(session: Any, sid: str = schedule.schedule_id) -> Any:
            return schedules.cancel_schedule(
                session, state.ctx, schedule_id=sid, wallet_id=alice.wallet_id
            )

        def execute_it(session: Any, k: uuid.UUID = key) -> Any:
            return schedules_run.execute_next(session, state.ctx, schedule_id=k)

        cancel, executed = _together(
            partial(state.uow.run, None, cancel_it), partial(state.runner.tx, execute_it)
        )
        assert cancel["status"] == "cancelled", cancel
        assert not isinstance(executed, Exception), executed
        view = alice.schedule(schedule.schedule_id)
        # the execution came first (and the cancel saw it), or it never happened
        assert view.executed == len(view.executions) == (0 if executed is None else 1)
        assert cancel["executed"] == view.executed
        paid += view.executed
    clock.advance(600)
    network.run_jobs()
    assert bob.balance().balance == paid * 1_00
    assert alice.balance().balance == 100_00 - paid * 1_00
    audits_ok(network)
