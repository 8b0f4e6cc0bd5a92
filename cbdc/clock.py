"""Time: the services' one clock, and one canonical ISO form for everything that is signed.

Each service reads "now" from the clock injected into its context (`OperatorContext.clock`,
`CentralBankState.clock`) and passes it into its SQL as a parameter: never `utcnow()` or the
database's `now()` directly. `utcnow` is the default clock (the wall clock); the scenario engine
injects a simulated one, tests a shifted one (tests/clocks.py), so back-offs, leases, limits'
days and AML windows follow whichever clock the service was given.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""A source of the current time (timezone-aware)."""


def utcnow() -> datetime:
    """The wall clock, in UTC: the default `Clock`."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("timestamp must carry a time zone")
    return moment
