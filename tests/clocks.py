"""A clock the tests move by hand: the operators' `OperatorContext.clock` shifted ahead of the
wall clock, so a test waits for the services' own time (a back-off, a due time, a lease) by
moving it on instead of sleeping. Every time an operator and its outbox SQL use comes from this
clock (decision: one clock), so `advance(0.6)` makes a retry due 0.5 s later at once.

    clock = operator_clock(network)   # installed on every operator of the in-process network
    ...
    clock.advance(0.6)                # instead of time.sleep(0.6)

The clock keeps running with the wall clock between moves (only shifted), so timestamps stay
ordered as they would in real time. The network fixtures are per test: nothing to undo.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from cbdc.clock import utcnow


class ShiftedClock:
    """The wall clock plus a shift that only grows (`advance`)."""

    def __init__(self) -> None:
        self._shift = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            shift = self._shift
        return utcnow() + shift

    def advance(self, seconds: float) -> None:
        """Move time on by `seconds` (what a sleep of that long would have let pass)."""
        if seconds < 0:
            raise ValueError("time does not go back")
        with self._lock:
            self._shift += timedelta(seconds=seconds)


def operator_clock(network: Any) -> ShiftedClock:
    """The shifted clock of every operator of `network` (an in-process network of
    tests/conftest.py): the one installed already, else a new one installed now (so helpers and
    the test move the same clock, and time never goes back)."""
    states = [network.state(code) for code in network.operator_apps]
    installed = getattr(states[0].ctx.clock, "__self__", None)
    if isinstance(installed, ShiftedClock):
        return installed
    clock = ShiftedClock()
    for state in states:
        state.ctx.clock = clock.now
    return clock
