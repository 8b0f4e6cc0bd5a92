"""Driving the services' settlement machinery from the engine, deterministically.

RTGS: the operators' outbox jobs (settle at the central bank, deliver to the payee's operator,
issuance and redemption at the water marks, AML reports) run until none is due, exactly as the
background worker would run them. Net: a clearing cycle of the central bank's clearing house,
at the scenario's interval of simulated time.

Nothing is forced due: the services read "now" from the simulated clock (the operators'
`OperatorContext.clock`, which their outbox SQL uses too), so a job waiting out a back-off (a
peer that was down, tokens held by another job) is due once simulated time has moved past it,
at the next slice or step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from operators.state import OperatorState
from simulator.network import SimNetwork, side_by_side

MAX_ROUNDS = 200


def run_jobs(net: SimNetwork) -> int:
    """Run every reachable operator's due outbox jobs until none is left; returns how many."""
    total = 0
    for _ in range(MAX_ROUNDS):
        ran = 0
        for code in net.codes:
            if net.up(code):
                ran += net.state(code).runner.run_due(limit=500)
        total += ran
        if not ran:
            break
    return total


def settle(net: SimNetwork) -> None:
    """Let money in flight land: the jobs due now, and in net mode a clearing cycle."""
    run_jobs(net)
    from operators.settlement import netting

    if any(netting.is_active(net.state(c)) for c in net.codes if net.up(c)) and net_work(net):
        net_cycle(net)
        run_jobs(net)


def _has_clearing_house(session: Session) -> bool:
    """Whether the central bank's database has the clearing tables (revision cb0003)."""
    return bool(
        session.execute(text("SELECT to_regclass('clearing_obligations') IS NOT NULL")).scalar_one()
    )


def net_work(net: SimNetwork) -> bool:
    """Whether a clearing cycle has anything to do: items or obligations not finished at a
    reachable operator, or submissions not yet in a cycle or obligations not paid or not
    acknowledged by both sides at the central bank. (The engine settles after its last slice
    of payments and again at the end of the step; the second cycle usually finds nothing.)"""
    from operators.settlement import netting

    if any(netting.unfinished(net.state(code)) for code in net.codes if net.up(code)):
        return True
    with net.cb_state.factory() as session:
        if not _has_clearing_house(session):
            return False
        from central_bank.clearing import obligations, submissions

        return submissions.waiting_items(session) > 0 or bool(
            obligations.list_obligations(session, operator=None, actionable=True, limit=1)
        )


def each_operator(net: SimNetwork, work: Callable[[OperatorState], Any]) -> None:
    """`work` for every reachable operator, side by side; returns when all are done."""
    side_by_side(work, [net.state(code) for code in net.codes if net.up(code)])


def net_cycle(net: SimNetwork) -> None:
    """One clearing cycle: operators submit, the central bank closes, debtors pay the net and
    apply those pairs, then creditors (and even pairs) apply theirs. The operators work side
    by side in each phase; the phases keep the order in which each applies its pairs the same
    from run to run. (Debtors apply each pair right after paying it, so the change the central
    bank mints back is in their vault before they pay the next one.)"""
    from operators.settlement import netting

    now = net.clock.now()
    each_operator(net, lambda state: netting.sync(state, now=now, force=True, poll=False))
    net.cb_state.close_cycle("manual")
    for _ in range(2):
        for roles in (("debtor",), ("creditor", "even")):
            each_operator(
                net,
                functools.partial(netting.sync, now=now, force=True, roles=roles),
            )


def net_paid(net: SimNetwork) -> dict[str, int]:
    """Per operator, the token value it has paid to settle net obligations so far."""
    with net.cb_state.factory() as session:
        if not _has_clearing_house(session):
            return {}
        from central_bank.clearing import stats

        return stats.net_paid_by_operator(session)
