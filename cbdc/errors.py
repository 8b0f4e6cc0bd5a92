"""Domain errors: what a client can cause, each with a stable `code` and an HTTP `status`.

Business code raises a subclass of `DomainError` (never `HTTPException`); `cbdc.web.problems`
renders it as RFC 9457 problem+json `{"type","title","status","detail","code"}`. Each service
defines its own subclasses with stable `code`s; clients switch on `code`. No web framework and
no database driver here: the wallet SDK imports these too.
"""

from __future__ import annotations

from typing import Any

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
