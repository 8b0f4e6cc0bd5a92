"""Authentication of signed requests and the unit of work around them.

Every endpoint except health, `/v1/info` and the docs is called with a signed envelope
(`cbdc.envelope`). `SignedRequestAuth` verifies it against the key a service-specific resolver
finds for the `CBDC-Key-Id`, and yields a `Principal`. The nonce is recorded in the same
transaction as the work (`UnitOfWork.run`); when the work fails with a domain error the nonce is
still recorded in a transaction of its own, so a refused request cannot be replayed later to
better effect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from cbdc.crypto import sha256_hex
from cbdc.db import transaction
from cbdc.envelope import H_KEY, read_envelope, verify_request
from cbdc.errors import DomainError, Forbidden, ReplayedRequest, Unauthenticated

T = TypeVar("T")


@dataclass(frozen=True)
class Principal:
    role: str  # "admin" | "operator" | "staff" | "wallet" | "regulator"
    subject: str  # operator code, wallet id, "admin"
    key_id: str
    nonce: str


@dataclass(frozen=True)
class ResolvedKey:
    role: str
    subject: str
    public_key: str


KeyResolver = Callable[[str, bytes], ResolvedKey | None]


class SignedRequestAuth:
    """FastAPI dependency: verifies the envelope and returns the caller's `Principal`."""

    def __init__(self, resolver: KeyResolver) -> None:
        self.resolver = resolver

    async def __call__(self, request: Request) -> Principal:
        body = await request.body()
        if H_KEY not in request.headers:
            raise Unauthenticated("this endpoint needs a signed request (CBDC-* headers)")
        key_id = read_envelope(request.headers)[0]
        resolved = await run_in_threadpool(self.resolver, key_id, body)
        if resolved is None:
            raise Unauthenticated(f"unknown key id {key_id!r}")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        verified = verify_request(
            public_key=resolved.public_key,
            method=request.method,
            target=target,
            headers=request.headers,
            body=body,
        )
        return Principal(
            role=resolved.role, subject=resolved.subject, key_id=key_id, nonce=verified.nonce
        )


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

        try:
            return transaction(self.factory, with_nonce)
        except DomainError as exc:
            if principal is not None and not isinstance(exc, ReplayedRequest):
                with contextlib.suppress(DomainError, DBAPIError):
                    transaction(self.factory, lambda s: record_nonce(s, principal))
            raise


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
