"""Authentication of signed requests and the unit of work around them.

Every endpoint except health, `/v1/info` and the docs is called with a signed envelope
(`cbdc.envelope`). `SignedRequestAuth` refuses an envelope of another version or for another
audience, verifies it against the key a service-specific resolver finds for the `CBDC-Key-Id`
(an unknown key id is answered like a bad signature), and yields a `Principal`. The nonce is
recorded in the same transaction as the work (`UnitOfWork.run`); when the work fails with a
domain error the nonce is still recorded in a transaction of its own, so a refused request cannot
be replayed later to better effect.

A verified request is marked on `request.state` (`Authentication`). The mark says `consumed` once
THIS request's nonce is committed as new in `request_nonces` (by `UnitOfWork.run`, with the work or
on its own after a domain error). `cbdc.web.app.sign_responses` signs an answer only for a consumed
nonce: for a verified request the handler never reached (a validation error first) it consumes the
nonce itself (`UnitOfWork.consume_nonce`) and signs only if that insert was new. So a service
never signs an answer to a request that failed authentication, nor to a resend of a request whose
nonce was used: the resend of a carried-out request's bytes with a header changed that the
signature does not cover (Content-Type) gets an unsigned 422, which nobody can take for the
service's word on the original.

Request bodies are parsed by `StrictJSONRoute`, which refuses objects with a repeated key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from cbdc.crypto import sha256_hex
from cbdc.db import transaction
from cbdc.envelope import H_KEY, RequestBinding, read_envelope, verify_envelope
from cbdc.errors import DomainError, Forbidden, ReplayedRequest, Unauthenticated
from cbdc.strictjson import loads_unique

T = TypeVar("T")


# Name of the `request.state` attribute that marks a request as authenticated.
AUTHENTICATED = "cbdc_authenticated"


class Authentication:
    """The mark of a verified request: what its answer is bound to, whether its nonce turned
    out to be a replay (then it is not authenticated after all, and nothing is signed), and
    whether this request consumed its nonce (committed it as new; only then is its answer
    signed)."""

    __slots__ = ("request", "replayed", "consumed")

    def __init__(self, request: RequestBinding) -> None:
        self.request = request
        self.replayed = False
        self.consumed = False


@dataclass(frozen=True)
class Principal:
    role: str  # "admin" | "operator" | "staff" | "wallet" | "regulator"
    subject: str  # operator code, wallet id, "admin"
    key_id: str
    nonce: str
    authentication: Authentication | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ResolvedKey:
    role: str
    subject: str
    public_key: str


KeyResolver = Callable[[str, bytes], ResolvedKey | None]


class SignedRequestAuth:
    """FastAPI dependency: verifies the envelope and returns the caller's `Principal`.
    `audience` is this service's id (`cbdc.envelope.CENTRAL_BANK_AUDIENCE`, `operator:<code>`):
    requests signed for any other service are refused."""

    def __init__(self, resolver: KeyResolver, *, audience: str) -> None:
        self.resolver = resolver
        self.audience = audience

    async def __call__(self, request: Request) -> Principal:
        body = await request.body()
        if H_KEY not in request.headers:
            raise Unauthenticated("this endpoint needs a signed request (CBDC-* headers)")
        envelope = read_envelope(request.headers, audience=self.audience)
        resolved = await run_in_threadpool(self.resolver, envelope.key_id, body)
        query = request.url.query
        binding = verify_envelope(
            envelope,
            public_key=None if resolved is None else resolved.public_key,
            method=request.method,
            target=request.url.path + (f"?{query}" if query else ""),
            body=body,
        )
        assert resolved is not None  # verify_envelope refuses an unknown key id
        authentication = Authentication(binding)
        setattr(request.state, AUTHENTICATED, authentication)
        return Principal(
            role=resolved.role,
            subject=resolved.subject,
            key_id=envelope.key_id,
            nonce=envelope.nonce,
            authentication=authentication,
        )


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is parsed once, refusing objects with a repeated key
    (`cbdc.strictjson`, 422 `duplicate_json_key`). FastAPI then uses the parsed body as it is
    (Starlette keeps it as the request's `_json`). Routers: `APIRouter(route_class=...)`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def parse_strictly(request: Request) -> Response:
            content_type = request.headers.get("content-type", "json")
            if "json" in content_type:
                body = await request.body()
                if body:
                    # not JSON (or not text) at all: FastAPI answers it as it always does
                    with contextlib.suppress(ValueError):
                        request._json = loads_unique(body)
            return await handler(request)

        return parse_strictly


def require_role(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise Forbidden(f"role {principal.role!r} may not do this")


def record_nonce(session: Session, principal: Principal) -> None:
    inserted = session.execute(
        text(
            "INSERT INTO request_nonces (key_id, nonce) VALUES (:k, :n) "
            "ON CONFLICT DO NOTHING RETURNING 1"
        ),
        {"k": principal.key_id, "n": principal.nonce},
    ).scalar()
    if inserted is None:
        if principal.authentication is not None:
            principal.authentication.replayed = True
        raise ReplayedRequest("this request's nonce was already used")


class UnitOfWork:
    """Runs one request's work in one transaction, with the caller's nonce recorded."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def run(self, principal: Principal | None, work: Callable[[Session], T]) -> T:
        def with_nonce(session: Session) -> T:
            if principal is not None:
                record_nonce(session, principal)
            return work(session)

        authentication = None if principal is None else principal.authentication
        try:
            result = transaction(self.factory, with_nonce)
        except DomainError as exc:
            if principal is not None and not isinstance(exc, ReplayedRequest):
                with contextlib.suppress(DomainError, DBAPIError):
                    transaction(self.factory, lambda s: record_nonce(s, principal))
                    if authentication is not None:
                        authentication.consumed = True
            raise
        if authentication is not None:
            authentication.consumed = True
        return result

    def consume_nonce(self, key_id: str, nonce: str) -> bool:
        """Record a nonce in a transaction of its own: True if it was new (this call consumed
        it), False if it was used already; a database failure raises. `cbdc.web.app.
        sign_responses` calls it for a verified request whose handler did not record its nonce
        (a validation error came first), before signing the answer."""

        def insert(session: Session) -> bool:
            inserted = session.execute(
                text(
                    "INSERT INTO request_nonces (key_id, nonce) VALUES (:k, :n) "
                    "ON CONFLICT DO NOTHING RETURNING 1"
                ),
                {"k": key_id, "n": nonce},
            ).scalar()
            return inserted is not None

        return transaction(self.factory, insert)


def prune_nonces(session: Session, *, older_than_seconds: int = 3 * 300) -> int:
    """Forget nonces older than the timestamp window: requests that old are refused anyway."""
    result = session.execute(
        text("DELETE FROM request_nonces WHERE seen_at < now() - make_interval(secs => :s)"),
        {"s": older_than_seconds},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def request_hash(request: Request) -> str:
    """What an Idempotency-Key is bound to: method, path and body of the request."""
    return sha256_hex(request.method.encode() + request.url.path.encode() + await request.body())
