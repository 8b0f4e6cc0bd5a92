"""Helpers for the outage tests: taking one database down, and checking the 503 answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import psycopg.errors
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from cbdc.errors import (
    DomainError,
    InsufficientFunds,
)
from tests.conftest import InProcessNetwork


@contextmanager
def database_down(pg_url: str, database_url: str) -> Iterator[None]:
    """The database refuses new connections and its open ones are terminated (57P01), until
    the block ends."""
    name = make_url(database_url).database
    admin = create_engine(make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


class Answers:
    """Every response a test client got (an httpx event hook), thread-safe."""

    def __init__(self, http: httpx.Client) -> None:
        self.lock = threading.Lock()
        self.responses: list[tuple[str, str, int, dict[str, str], Any]] = []
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        http.event_hooks = {"request": [self._request], "response": [self._response]}

    def _request(self, request: httpx.Request) -> None:
        with self.lock:
            self.requests.append(
                (request.method, request.url.path, dict(request.headers), request.content)
            )

    def _response(self, response: httpx.Response) -> None:
        response.read()
        try:
            body = response.json()
        except ValueError:
            body = response.text
        with self.lock:
            self.responses.append(
                (
                    response.request.method,
                    response.request.url.path,
                    response.status_code,
                    dict(response.headers),
                    body,
                )
            )

    def last(self) -> tuple[str, str, int, dict[str, str], Any]:
        with self.lock:
            return self.responses[-1]


def operator_db(net: InProcessNetwork, code: str) -> str:
    return str(net.state(code).config.database_url)


class OutageJudge:
    """Stands in for `signed_batch.judge_signed`; the database fails while `down` is set."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[int] = []

    def __call__(
        self, session: Any, ctx: Any, *, items: list[tuple[dict[str, Any], str]]
    ) -> list[dict[str, Any] | DomainError]:
        self.gate.wait(5)
        self.batches.append(len(items))
        if self.down.is_set():
            raise sa_exc.OperationalError(
                "SELECT", {}, psycopg.OperationalError("server closed the connection")
            )
        return [
            InsufficientFunds("too much") if o["amount"] > 100 else {"nonce": o["nonce"]}
            for o, _ in items
        ]
