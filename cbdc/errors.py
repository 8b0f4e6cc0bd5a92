"""Domain errors and their RFC 9457 problem+json rendering.

Business code raises a subclass of `DomainError` (never `HTTPException`); one handler, installed
by `install_problem_handlers`, turns it into `{"type","title","status","detail","code"}`.
Each service defines its own subclasses with stable `code`s; clients switch on `code`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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
        return problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)

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
        log.exception("unexpected error", exc_info=exc)
        return problem(500, "internal_error", "Internal error", "An unexpected error occurred")
