"""Domain errors and their RFC 9457 problem+json rendering.

Business code raises a subclass of `DomainError` (never `HTTPException`); one handler, installed
by `install_problem_handlers`, turns it into `{"type","title","status","detail","code"}`.
Each service defines its own subclasses with stable `code`s; clients switch on `code`.

Outages are answered as outages: while a service's database cannot be reached (refused or lost
connections, an administrator's shutdown, a server starting up or recovering, a pool timeout),
every route answers 503 `database_unavailable` with `Retry-After`, never 500, and the next
request after the database is back works again (the pool pings and discards dead connections).
`database_unavailable(exc)` is the one place that decides what counts as such an outage.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://cbdc-sim.dev/problems/"


class DomainError(Exception):
    """Base of every error a client can cause. `code` is stable; `detail` is for humans."""

    code = "domain_error"
    status = 400
    title = "Request could not be processed"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class ValidationFailed(DomainError):
    code = "validation_error"
    status = 422
    title = "Request is not valid"


class Unauthenticated(DomainError):
    code = "unauthenticated"
    status = 401
    title = "Request is not authenticated"


class BadSignature(DomainError):
    code = "bad_signature"
    status = 401
    title = "Signature does not verify"


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
    title = "Not entitled to this action"


class NotFound(DomainError):
    code = "not_found"
    status = 404
    title = "No such resource"


class Conflict(DomainError):
    code = "conflict"
    status = 409
    title = "Conflicts with the current state"


class ReplayedRequest(Conflict):
    code = "replayed_request"
    title = "This signed request was already seen"


class IdempotencyMismatch(Conflict):
    code = "idempotency_key_reused"
    title = "Idempotency key was used with a different request"


class InsufficientFunds(DomainError):
    code = "insufficient_funds"
    status = 422
    title = "Insufficient funds"


class ServiceUnavailable(DomainError):
    """Nothing is wrong with the request: try it again (the same signed order is safe to send
    again, its nonce makes it one payment) after `retry_after` seconds."""

    code = "service_unavailable"
    status = 503
    title = "The service is unavailable for a moment"
    retry_after = 1  # seconds, sent as Retry-After


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"
    title = "The service's database is unavailable for a moment"


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


def _log_outage(exc: BaseException) -> None:
    # One line, no traceback: during an outage every request ends here.
    log.warning("database unavailable: %s", _first_line(exc))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def log_failure(logger: logging.Logger, what: str, exc: BaseException) -> bool:
    """A background task failed and will be tried again: a database outage is logged in one
    line (it is expected, and would repeat at every tick), anything else with its traceback.
    Returns whether it was an outage (callers may then wait longer before the next try)."""
    if database_unavailable(exc):
        logger.warning("%s: database unavailable (%s); retrying", what, _first_line(exc))
        return True
    logger.error("%s failed", what, exc_info=exc)
    return False


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        if isinstance(exc, ServiceUnavailable):
            return outage_problem(exc)
        return problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)

    async def _database(_: Request, exc: Exception) -> JSONResponse:
        """Errors of the database layer: an outage is 503 `database_unavailable`; any other
        is a bug, re-raised to `_unexpected` (500, logged with its traceback)."""
        if not database_unavailable(exc):
            raise exc
        _log_outage(exc)
        return outage_problem()

    # Registered by class, not only under `Exception`: Starlette answers these in the app's
    # exception middleware, so an outage is not logged and re-raised as a crash of the app.
    for cls in (sa_exc.SQLAlchemyError, psycopg.Error):
        app.add_exception_handler(cls, _database)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "msg": e["msg"]}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "msg": "invalid"}
        return problem(
            422,
            "validation_error",
            "Request is not valid",
            f"{first['field']}: {first['msg']}",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        if database_unavailable(exc):  # an outage wrapped in another error
            _log_outage(exc)
            return outage_problem()
        log.exception("unexpected error", exc_info=exc)
        return problem(500, "internal_error", "Internal error", "An unexpected error occurred")


def outage_problem(exc: ServiceUnavailable | None = None) -> JSONResponse:
    """503 problem+json with Retry-After (default: `DatabaseUnavailable`)."""
    exc = exc or DatabaseUnavailable("the database cannot be reached; try again shortly")
    response = problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response
