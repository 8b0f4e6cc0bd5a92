"""Database plumbing shared by the services: engines, the one commit point, migrations.

Services and repositories only `flush()`. The single place that commits is `transaction()`
(used by API routes, workers and the CLI): it commits on success, rolls back on any error, and
re-runs the unit of work on a serialization failure or deadlock (SQLSTATE 40001 / 40P01) a
bounded number of times.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
RETRYABLE_SQLSTATES = {"40001", "40P01"}
MAX_ATTEMPTS = 5


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(url: str, *, pool_size: int = 8, max_overflow: int = 8) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        future=True,
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def transaction(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction and commit; retry on 40001/40P01."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with session_scope(factory) as session:
                return work(session)
        except DBAPIError as exc:
            if sqlstate(exc) in RETRYABLE_SQLSTATES and attempt < MAX_ATTEMPTS:
                log.info("retrying after %s (attempt %d)", sqlstate(exc), attempt)
                time.sleep(random.uniform(0.001, 0.01) * attempt)
                continue
            raise
    raise AssertionError("unreachable")


def migrate(database_url: str, script_location: str) -> None:
    """`alembic upgrade head` for one database ("central_bank" or "operator")."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR / script_location))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(cfg, "head")


def create_database(server_url: str, name: str, *, drop_existing: bool = False) -> str:
    """Create database `name` on the server of `server_url`; return the new database's URL."""
    url = make_url(server_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.exec_driver_sql(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).scalar()
            if exists and drop_existing:
                conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
                exists = None
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def fetch_rows(session: Session, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows as plain tuples straight from psycopg, in the session's transaction, for the batch
    paths that read thousands of rows (SQLAlchemy's row wrapping cost more than the query).
    `sql` uses psycopg's `%(name)s` placeholders."""
    dbapi = session.connection().connection.driver_connection
    with dbapi.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(sql, params)
        return cursor.fetchall()  # type: ignore[no-any-return]


def drop_database(server_url: str, database_url: str) -> None:
    """Drop a database `create_database` made, closing its connections first."""
    name = database_url.rsplit("/", 1)[1]
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
