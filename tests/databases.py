"""Test databases: migrated once, copied per test, dropped afterwards.

The real Alembic migrations run once per session and kind ("central_bank" | "operator") into a
template database that nobody may connect to afterwards (a template being copied must have no
other connections). Each test database is a copy of it (`CREATE DATABASE ... TEMPLATE`), made
ahead of time by a thread of this module while the tests run, so a test seldom waits for one.
The `drop_test_databases` fixture (tests/conftest.py) drops what a test (or its function-scoped
fixtures) made once it is done; what module- or session-scoped fixtures made (set up before it)
is dropped at the end of the session.

Tests of the migrations themselves call `cbdc.db.migrate` on databases of their own.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine, make_url

from cbdc.db import create_database, migrate

KINDS = ("central_bank", "operator")
# Copies kept ready per kind: an in-process network takes one central bank and two operators.
READY = {"central_bank": 2, "operator": 4}
WAIT_FOR_COPY = 120.0  # seconds; the copying thread failed if none comes by then


def admin_engine(pg_url: str) -> Engine:
    return create_engine(make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT")


def make_template(pg_url: str, kind: str) -> str:
    """A database migrated to head by the real migrations, closed to connections; its name."""
    name = f"tpl_{kind}_{uuid.uuid4().hex[:10]}"
    migrate(create_database(pg_url, name), kind)  # its engine is disposed: no connection left
    admin = admin_engine(pg_url)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    finally:
        admin.dispose()
    return name


def copy_database(conn: Connection, template: str, kind: str) -> str:
    """A new database copied from `template`; its name."""
    name = f"t_{kind}_{uuid.uuid4().hex[:10]}"
    # FILE_COPY (PostgreSQL 15+) copies the files: faster for a small database than WAL_LOG,
    # the default, which writes every page to the WAL.
    modern = int(conn.exec_driver_sql("SHOW server_version_num").scalar_one()) >= 150000
    strategy = " STRATEGY FILE_COPY" if modern else ""
    conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
    return name


class Copies:
    """Copies of the templates of one server, made ahead by a thread of their own."""

    def __init__(self, pg_url: str) -> None:
        self.pg_url = pg_url
        self.templates = {kind: make_template(pg_url, kind) for kind in KINDS}
        self.ready: dict[str, queue.Queue[str]] = {kind: queue.Queue() for kind in KINDS}
        self.taken = threading.Event()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="test-db-copies", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        admin = admin_engine(self.pg_url)
        try:
            with admin.connect() as conn:
                while not self.stopping.is_set():
                    short = [k for k in KINDS if self.ready[k].qsize() < READY[k]]
                    if not short:
                        self.taken.wait(0.5)
                        self.taken.clear()
                        continue
                    for kind in short:
                        self.ready[kind].put(copy_database(conn, self.templates[kind], kind))
        except BaseException as exc:  # handed to the test waiting for a copy
            self.error = exc
        finally:
            admin.dispose()

    def take(self, kind: str) -> str:
        """The URL of a fresh copy of `kind`'s template (the caller drops it)."""
        deadline = time.monotonic() + WAIT_FOR_COPY
        while True:
            try:
                name = self.ready[kind].get(timeout=0.2)
                break
            except queue.Empty:
                if self.error is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"no copy of the {kind} template: {self.error!r}") from None
        self.taken.set()
        return make_url(self.pg_url).set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        """Stop copying; drop the copies nobody took and the templates."""
        self.stopping.set()
        self.taken.set()
        self.thread.join(timeout=60)
        admin = admin_engine(self.pg_url)
        try:
            with admin.connect() as conn:
                for kind in KINDS:
                    while not self.ready[kind].empty():
                        conn.exec_driver_sql(f'DROP DATABASE "{self.ready[kind].get()}"')
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.templates[kind]}"')
        finally:
            admin.dispose()


_COPIES: dict[str, Copies] = {}  # server URL -> its copies
# Databases new_database made that nobody has dropped yet: (server URL, database URL).
created: list[tuple[str, str]] = []


def new_database(pg_url: str, kind: str) -> str:
    """A fresh database at the head of the real migrations ("central_bank"|"operator"): a copy
    of the session's template. The `drop_test_databases` fixture drops it after the test."""
    if pg_url not in _COPIES:
        _COPIES[pg_url] = Copies(pg_url)
    url = _COPIES[pg_url].take(kind)
    created.append((pg_url, url))
    return url


def drop_databases(databases: list[tuple[str, str]]) -> None:
    """Drop these databases (`DROP DATABASE ... WITH (FORCE)` ends their connections first),
    over one connection per server."""
    for server_url in dict.fromkeys(server for server, _ in databases):
        admin = admin_engine(server_url)
        try:
            with admin.connect() as conn:
                for server, url in databases:
                    if server == server_url:
                        name = make_url(url).database
                        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.dispose()


def close_all() -> None:
    """At the end of the session: drop every database made here that is still there."""
    drop_databases(created)
    created.clear()
    for copies in _COPIES.values():
        copies.close()
    _COPIES.clear()
