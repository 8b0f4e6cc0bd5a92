"""Escrow under concurrency: releases racing each other never take more than the amount;
releases racing the deadline's refund are decided by the one clock (release iff now <
deadline); the automatic refund happens exactly once with two runners at once and after a
restart (a new operator state on the same database). Conservation by the audits."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from sqlalchemy import text

from cbdc.http import RemoteError
from operators.programmable import escrow_jobs
from operators.state import OperatorState
from tests.clocks import operator_clock
from tests.programmable.escrow_helpers import at, audit_all


def _together(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once in threads; each one's result or exception."""
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # compared below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _events(network: Any, kind: str) -> int:
    with network.state("BKA1").factory() as s:
        return int(
            s.execute(
                text("SELECT count(*) FROM escrow_events WHERE kind = :k"), {"k": kind}
            ).scalar_one()
        )


def test_concurrent_releases_never_exceed_the_amount(network: Any) -> None:
    clock = operator_clock(network)
    payer = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    payees = [network.open_wallet("BKA1"), network.open_wallet("BKB1")]
    escrows = [payer.create_escrow(p.wallet_id, 300_00, deadline=at(clock, 600)) for p in payees]
    calls = [partial(payer.release_escrow, e.escrow_id, 50_00) for e in escrows for _ in range(8)]
    results = _together(calls)
    ok = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, RemoteError)]
    assert len(ok) == 12 and len(errors) == 4, results
    assert all(e.status == 409 for e in errors), errors
    assert {e.code for e in errors} <= {"escrow_closed", "escrow_amount_exceeds_remaining"}
    for escrow in escrows:
        assert payer.escrow(escrow.escrow_id).released == 300_00
    reports = audit_all(network)
    assert payees[0].balance().balance == payees[1].balance().balance == 300_00
    assert reports["BKA1"]["escrows"] == 0
    assert payer.balance().balance == 400_00


def test_release_racing_the_deadline_refund(network: Any) -> None:
    clock = operator_clock(network)
    payer = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    payee = network.open_wallet("BKA1")
    late = [payer.create_escrow(payee.wallet_id, 100_00, deadline=at(clock, 30)) for _ in range(3)]
    early = [
        payer.create_escrow(payee.wallet_id, 100_00, deadline=at(clock, 3600)) for _ in range(3)
    ]
    clock.advance(31)  # the first three are due, the others not
    runner = network.state("BKA1").runner
    calls: list[Callable[[], Any]] = [
        partial(payer.release_escrow, e.escrow_id, 100_00) for e in late + early
    ]
    calls += [lambda: escrow_jobs.expire_due(runner, batch=1) for _ in range(2)]
    results = _together(calls)
    for result in results[:3]:  # past the deadline: refused (before or after the sweep)
        assert isinstance(result, RemoteError), result
        assert result.code in ("escrow_expired", "escrow_closed"), result
    for result in results[3:6]:
        assert not isinstance(result, BaseException), result
    assert sum(results[6:]) == 3
    assert [payer.escrow(e.escrow_id).status for e in late] == ["refunded"] * 3
    assert [payer.escrow(e.escrow_id).status for e in early] == ["released"] * 3
    assert _events(network, "expiry") == 3
    assert payer.balance().balance == 1_000_00 - 300_00
    assert payee.balance().balance == 300_00
    audit_all(network)


def test_the_automatic_refund_happens_once_with_two_runners_and_a_restart(
    network: Any,
) -> None:
    clock = operator_clock(network)
    payer = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    payee = network.open_wallet("BKB1")
    escrows = [
        payer.create_escrow(payee.wallet_id, 50_00, deadline=at(clock, 10)) for _ in range(10)
    ]
    payer.release_escrow(escrows[0].escrow_id, 20_00)
    clock.advance(11)
    state = network.state("BKA1")
    restarted = OperatorState(state.config)  # a second process on the same database
    restarted.ctx.clock = state.ctx.clock
    try:
        done = _together(
            [
                lambda: escrow_jobs.expire_due(state.runner, batch=3),
                lambda: escrow_jobs.expire_due(restarted.runner, batch=3),
                lambda: restarted.runner.run_due(),
            ]
        )
        assert not any(isinstance(d, BaseException) for d in done), done
        assert escrow_jobs.expire_due(state.runner) == 0
        assert escrow_jobs.expire_due(restarted.runner) == 0
    finally:
        restarted.stop()
    assert _events(network, "expiry") == 10
    assert all(payer.escrow(e.escrow_id).status == "refunded" for e in escrows)
    info = payer.balance()
    assert (info.balance, info.locked) == (1_000_00 - 20_00, 0)
    reports = audit_all(network)
    assert reports["BKA1"]["escrows"] == 0
    assert payee.balance().balance == 20_00
