"""What every FastAPI service of the network shares: problem handlers, a request body size
limit and signed responses."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cbdc.crypto import SigningKey
from cbdc.envelope import H_RESPONSE_SIG, response_signing_string
from cbdc.errors import ReplayedRequest
from cbdc.http import RemoteError, RemoteUnavailable
from cbdc.outages import log_failure
from cbdc.web.auth import AUTHENTICATED
from cbdc.web.problems import install_problem_handlers, problem

log = logging.getLogger(__name__)

# The largest request body a service reads (setting: CBDC_MAX_BODY_BYTES). The largest legitimate
# bodies are a clearing submission or an obligation acknowledgement of 10,000 items (about 300
# bytes each at the schemas' longest fields: some 3 MB) and an operator's batch of 1,000 signed
# payments (about 1.5 MB with 140-character memos): 16 MiB leaves five times that.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


def max_body_bytes_setting() -> int:
    raw = os.environ.get("CBDC_MAX_BODY_BYTES", "").strip()
    return int(raw) if raw else DEFAULT_MAX_BODY_BYTES


def too_large(limit: int) -> JSONResponse:
    """413 `body_too_large`: what a body over the limit gets."""
    return problem(
        413,
        "body_too_large",
        "Request body is too large",
        f"request bodies are limited to {limit} bytes",
    )


class BodySizeLimit:
    """ASGI middleware: a request body over `max_bytes` is refused 413 `body_too_large`, from
    its Content-Length before anything is read, or once the bytes read pass the limit (a chunked
    body). The body is read here, up to the limit, and handed on to the app."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isascii() and length.isdigit() and int(length) > self.max_bytes:
            await too_large(self.max_bytes)(scope, receive, send)
            return
        body = await read_body(receive, self.max_bytes)
        if body is None:  # the client went away
            return
        if body is TOO_LARGE:
            await too_large(self.max_bytes)(scope, receive, send)
            return
        await self.app(scope, replay_body(body, receive), send)


TOO_LARGE = bytes(bytearray(b"over the limit"))  # `read_body`'s marker, compared by identity


async def read_body(receive: Receive, max_bytes: int) -> bytes | None:
    """A request's whole body; `TOO_LARGE` (the object) once the bytes read pass `max_bytes`;
    None if the client went away."""
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            return TOO_LARGE
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app `body` (already read), then whatever comes next."""
    pending: list[Message] = [{"type": "http.request", "body": body}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def base_app(
    title: str, description: str, version: str = "0.1.0", *, max_body_bytes: int | None = None
) -> FastAPI:
    """`max_body_bytes`: the request body size limit (default: `max_body_bytes_setting()`)."""
    app = FastAPI(title=title, description=description, version=version)
    install_problem_handlers(app)
    limit = max_body_bytes_setting() if max_body_bytes is None else max_body_bytes
    app.state.max_body_bytes = limit  # for front doors (`add_front_door`), which read bodies too
    app.add_middleware(BodySizeLimit, max_bytes=limit)

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        # e.g. a NUL character or an out-of-range value PostgreSQL refuses to store; the
        # transaction was rolled back, so nothing was written.
        return problem(
            422,
            "invalid_data",
            "Request contains data that cannot be stored",
            str(getattr(exc, "orig", exc)).splitlines()[0][:200],
        )

    @app.exception_handler(UnicodeEncodeError)
    async def _encoding(_: Request, exc: UnicodeEncodeError) -> JSONResponse:
        return problem(
            422,
            "invalid_data",
            "Request contains text that is not valid Unicode",
            "strings must not contain unpaired surrogates",
        )

    @app.exception_handler(RemoteUnavailable)
    async def _unavailable(_: Request, exc: RemoteUnavailable) -> JSONResponse:
        return problem(
            503,
            "upstream_unavailable",
            "A service this request depends on is unavailable",
            str(exc),
        )

    @app.exception_handler(RemoteError)
    async def _refused(_: Request, exc: RemoteError) -> JSONResponse:
        return problem(
            502,
            "upstream_refused",
            "Another party refused the request",
            f"{exc.code}: {exc.detail}",
            upstream_code=exc.code,
        )

    return app


def sign_responses(
    app: FastAPI, key: SigningKey, *, consume_nonce: Callable[[str, str], bool]
) -> None:
    """Sign every answer to an authenticated request that consumed its nonce
    (CBDC-Response-Signature), bound to that request (`cbdc.envelope.response_signing_string`).
    Requests that failed authentication (unknown key, bad signature, wrong audience or version,
    stale timestamp, replayed nonce) and unsigned requests get unsigned answers: the service
    vouches only for answers to requests it verified, so nobody can collect signed refusals for
    requests of their choosing.

    A verified request whose nonce the handler did not consume (FastAPI refused it 422 before
    the handler ran: a missing header, another content type) has its nonce consumed here,
    `consume_nonce(key_id, nonce)` (`cbdc.web.auth.UnitOfWork.consume_nonce`), and its answer is
    signed only if that nonce was new. A nonce already used gets the answer every replay gets,
    409 `replayed_request`, unsigned; a database failure leaves the answer unsigned. Resent bytes
    of a request the service carried out, with an unsigned header changed so that validation
    fails (Content-Type), thus get no signed refusal: a signed 422 would read as the service's
    refusal of the original request, which it carried out."""

    @app.middleware("http")
    async def _sign(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        authentication = getattr(request.state, AUTHENTICATED, None)
        if authentication is None or authentication.replayed:
            return response
        if not authentication.consumed:
            bound = authentication.request
            try:
                fresh = await run_in_threadpool(consume_nonce, bound.key_id, bound.nonce)
            except Exception as exc:  # an outage: the answer goes out, but not vouched for
                log_failure(log, "recording the nonce of a refused request", exc)
                return response
            if not fresh:  # a resend of a request whose nonce was used: refused as a replay
                return problem(
                    ReplayedRequest.status,
                    ReplayedRequest.code,
                    ReplayedRequest.title,
                    "this request's nonce was already used",
                )
            authentication.consumed = True
        body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
        headers = dict(response.headers)
        headers.pop("content-length", None)
        headers[H_RESPONSE_SIG] = key.sign(
            response_signing_string(authentication.request, response.status_code, body)
        )
        return Response(
            content=body,
            status_code=response.status_code,
            headers=headers,
            media_type=response.media_type,
        )


# ------------------------------------------------------------------ front doors


def add_front_door(app: FastAPI, wrap: Callable[[ASGIApp], ASGIApp]) -> None:
    """Put an ASGI app in front of `app`'s whole middleware stack (before Starlette's error
    middleware, the body limit, the metrics middleware and the router): `wrap(stack)` gets the
    stack and answers what it wants to itself, passing the rest to the stack. For a hot route
    the framework's per-request work is most of the cost (`operators.payments.fast_path`). The app
    stays a FastAPI app: routes, OpenAPI documentation, lifespan and state are unchanged."""
    build = app.build_middleware_stack

    def build_with_front_door() -> ASGIApp:
        return wrap(build())

    app.build_middleware_stack = build_with_front_door  # type: ignore[method-assign]
    app.middleware_stack = None  # built again (with the door) at the next request


async def exception_response(app: FastAPI, scope: Scope, exc: Exception) -> Response:
    """The answer `app`'s exception handlers give to `exc`, as if a route had raised it: the
    most specific handler of its class (problem+json for a `DomainError`, 503 for an outage);
    a handler that re-raises (a database error that is no outage) hands it to the handler of
    `Exception` (500 `internal_error`, logged), as Starlette's error middleware does."""
    request = Request(scope)
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None and cls is not Exception:
            try:
                return await handler(request, exc)  # type: ignore[no-any-return,misc]
            except Exception:
                break
    fallback = handlers.get(Exception) or handlers.get(500)
    if fallback is not None:
        return await fallback(request, exc)  # type: ignore[no-any-return,misc]
    log.error("unexpected error", exc_info=exc)
    return problem(500, "internal_error", "Internal error", "An unexpected error occurred")
