"""What every FastAPI service of the network shares: problem handlers and signed responses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from cbdc.auth import AUTHENTICATED
from cbdc.crypto import SigningKey
from cbdc.envelope import H_RESPONSE_SIG, response_signing_string
from cbdc.errors import install_problem_handlers, problem
from cbdc.http import RemoteError, RemoteUnavailable


def base_app(title: str, description: str, version: str = "0.1.0") -> FastAPI:
    app = FastAPI(title=title, description=description, version=version)
    install_problem_handlers(app)

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


def sign_responses(app: FastAPI, key: SigningKey) -> None:
    """Sign every answer to an authenticated request (CBDC-Response-Signature), bound to that
    request (`cbdc.envelope.response_signing_string`). Requests that failed authentication
    (unknown key, bad signature, wrong audience or version, stale timestamp, replayed nonce) and
    unsigned requests get unsigned answers: the service vouches only for answers to requests it
    verified, so nobody can collect signed refusals for requests of their choosing."""

    @app.middleware("http")
    async def _sign(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        authentication = getattr(request.state, AUTHENTICATED, None)
        if authentication is None or authentication.replayed:
            return response
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
