"""What counts as a database outage, and how a background task logs a failure.

Outages are answered as outages: while a service's database cannot be reached (refused or lost
connections, an administrator's shutdown, a server starting up or recovering, a pool timeout),
every route answers 503 `database_unavailable` with `Retry-After`, never 500, and the next
request after the database is back works again (the pool pings and discards dead connections).
`database_unavailable(exc)` is the one place that decides what counts as such an outage.
"""

from __future__ import annotations

import logging

import psycopg
from sqlalchemy import exc as sa_exc

# SQLSTATEs that mean the connection is gone or the server will not serve it right now:
# class 08 (connection exception), an administrator's or a crash's shutdown (57P01 admin
# shutdown, 57P02 crash shutdown, 57P03 cannot connect now: starting up, shutting down, in
# recovery), 57P05 idle session timeout, 53300 too many connections.
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57P05", "53300"})


def database_unavailable(exc: BaseException) -> bool:
    """Is `exc` (or what it wraps: `orig`, `__cause__`, `__context__`) a database outage, as
    opposed to an error of the statement (a constraint, a type, a serialization failure)?"""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen or len(seen) > 20:
            continue
        seen.add(id(e))
        if isinstance(e, (sa_exc.DisconnectionError, sa_exc.TimeoutError, sa_exc.InterfaceError)):
            return True  # TimeoutError: no pooled connection came free in time
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, psycopg.InterfaceError):  # e.g. "the connection is closed"
            return True
        if isinstance(e, psycopg.OperationalError):
            state = e.sqlstate
            # No SQLSTATE: libpq's own failure (connection refused, server closed the
            # connection unexpectedly, the server refused us at start-up).
            if state is None or state.startswith("08") or state in UNAVAILABLE_SQLSTATES:
                return True
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]
    return False


def first_line(exc: BaseException) -> str:
    """The first line of an error's message, at most 300 characters (for one-line logs)."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def log_failure(logger: logging.Logger, what: str, exc: BaseException) -> bool:
    """A background task failed and will be tried again: a database outage is logged in one
    line (it is expected, and would repeat at every tick), anything else with its traceback.
    Returns whether it was an outage (callers may then wait longer before the next try)."""
    if database_unavailable(exc):
        logger.warning("%s: database unavailable (%s); retrying", what, first_line(exc))
        return True
    logger.error("%s failed", what, exc_info=exc)
    return False
