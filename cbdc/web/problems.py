"""RFC 9457 problem+json rendering of errors for the FastAPI services.

One handler, installed by `install_problem_handlers`, turns a `DomainError` into
`{"type","title","status","detail","code"}`; a database outage (`cbdc.outages`) into 503
`database_unavailable` with `Retry-After`; a request validation error into 422; anything
unexpected into a logged 500.
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

from cbdc.errors import PROBLEM_TYPE_BASE, DatabaseUnavailable, DomainError, ServiceUnavailable
from cbdc.outages import database_unavailable, first_line

log = logging.getLogger(__name__)


def _log_outage(exc: BaseException) -> None:
    # One line, no traceback: during an outage every request ends here.
    log.warning("database unavailable: %s", first_line(exc))


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
