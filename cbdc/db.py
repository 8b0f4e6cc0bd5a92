"""Database plumbing shared by the services: engines, the one commit point, migrations.

Services and repositories only `flush()`. The single place that commits is `transaction()`
(used by API routes, workers and the CLI): it commits on success, rolls back on any error, and
re-runs the unit of work on a serialization failure or deadlock (SQLSTATE 40001 / 40P01) a
bounded number of times.

Each service's database belongs to a role of its own (`create_service_database`): a login
without superuser, CREATEDB or CREATEROLE that owns that database and everything in it (its
migrations run as that role) and that no other role may connect to. Its password is kept in a
0600 libpq password file that the database URL names (`?passfile=`), never in the URL.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, MetaData, create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
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


# A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 1.0


def make_engine(url: str, *, pool_size: int = 8, max_overflow: int = 8) -> Engine:
    """An engine whose pool pings only connections that sat idle (`_ping_if_idle`): under load
    a checkout costs no round trip (SQLAlchemy's `pool_pre_ping` cost one `SELECT 1` per
    transaction, one per micro-batch of payments), and a database that restarted while a
    service was idle is still noticed before the first request uses a dead connection. A
    restart under load is noticed by the first statement that fails: SQLAlchemy invalidates
    the whole pool (every connection older than the failure) and that request answers 503
    `database_unavailable`; the next ones get fresh connections."""
    engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow, future=True)
    event.listen(engine.pool, "checkin", _mark_idle)
    event.listen(engine.pool, "checkout", _ping_if_idle)
    return engine


def _mark_idle(dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        if dbapi_connection.info.transaction_status != 0:  # the ping opened a transaction
            dbapi_connection.rollback()
    except Exception as exc:
        # The pool replaces this connection (and every one older: they met the same restart)
        # and tries the checkout again.
        raise InvalidatePoolError(f"pooled connection is dead: {exc}") from exc


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


# What a service's role may do: log in, and nothing a superuser or administrator could.
SERVICE_ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"


def create_service_database(
    server_url: str, name: str, *, passfile: Path, drop_existing: bool = False
) -> str:
    """Database `name`, owned by a login role also called `name` that may do nothing else and
    that only it (and superusers) may connect to; return the URL that logs in as that role.

    The role's password is read from `passfile` (a 0600 libpq password file), or made and
    written there the first time, and (re)set on the server each time, so the file and the
    server agree. When the server's user (`server_url`) may not create roles and databases,
    the database is made as before, for that user, and a warning says so: the services then
    connect as that user (`CBDC_DATABASE_URL` against a server where we are not an admin)."""
    from psycopg import sql

    from cbdc.files import write_private
    from cbdc.pg import new_password, pgpass_line, read_pgpass_password

    url = make_url(server_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            me, is_super, may_create_roles, may_create_db = conn.exec_driver_sql(
                "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                "WHERE rolname = current_user"
            ).one()
            if me == name or not (is_super or (may_create_roles and may_create_db)):
                log.warning(
                    "database %s: the server's user %s may not create roles and databases; "
                    "the service connects as %s (not a role of its own)",
                    name,
                    me,
                    me,
                )
                return create_database(server_url, name, drop_existing=drop_existing)
            password = read_pgpass_password(passfile) or new_password()
            write_private(passfile, pgpass_line(name, password))
            dbapi = conn.connection.driver_connection
            verifier = dbapi.pgconn.encrypt_password(  # type: ignore[union-attr]
                password.encode(), name.encode(), b"scram-sha-256"
            ).decode()
            role = sql.Identifier(name)
            role_exists = conn.exec_driver_sql(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)
            ).scalar()
            # The verifier, not the password, goes to the server (and so to any log of it).
            dbapi.execute(  # type: ignore[union-attr]
                sql.SQL("{} ROLE {} WITH " + SERVICE_ROLE_ATTRIBUTES + " PASSWORD {}").format(
                    sql.SQL("ALTER" if role_exists else "CREATE"), role, sql.Literal(verifier)
                )
            )
            if not is_super:  # to make it the owner of a database, be a member of it
                dbapi.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))  # type: ignore[union-attr]
            db_exists = conn.exec_driver_sql(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).scalar()
            if db_exists and drop_existing:
                dbapi.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(role))  # type: ignore[union-attr]
                db_exists = None
            verb = "ALTER DATABASE {} OWNER TO {}" if db_exists else "CREATE DATABASE {} OWNER {}"
            dbapi.execute(sql.SQL(verb).format(role, role))  # type: ignore[union-attr]
            dbapi.execute(  # type: ignore[union-attr]
                sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(role)
            )
    finally:
        admin.dispose()
    if db_exists:
        _hand_over_objects(url.set(database=name), name)
    query = {k: v for k, v in url.query.items() if k not in ("passfile", "password")}
    service = URL.create(
        url.drivername,
        username=name,
        host=url.host,
        port=url.port,
        database=name,
        query={**query, "passfile": str(passfile)},
    )
    return service.render_as_string(hide_password=False)


# Objects in `public` another role owns, as ALTER statements giving them to role `:role`:
# tables (and views) first, which take their own sequences along; then what is left.
_NOT_OWNED = """
SELECT format('ALTER TABLE %%s OWNER TO %%I', c.oid::regclass, %(role)s::text)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
"""
_NOT_OWNED_REST = """
SELECT format('ALTER SEQUENCE %%s OWNER TO %%I', c.oid::regclass, %(role)s::text)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'S'
  AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
UNION ALL
SELECT format('ALTER ROUTINE %%s OWNER TO %%I', p.oid::regprocedure, %(role)s::text)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public'
  AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
UNION ALL
SELECT format('ALTER TYPE %%s OWNER TO %%I', t.oid::regtype, %(role)s::text)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')
  AND t.typowner <> (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
"""


def _hand_over_objects(database_url: URL, role: str) -> None:
    """Give `role` what another role made in its database (a database made before it had a
    role of its own, as the superuser): its migrations and its service then own everything."""
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for query in (_NOT_OWNED, _NOT_OWNED_REST):
                for statement in _statements(conn, query, role):
                    log.info("database %s: %s", database_url.database, statement)
                    conn.exec_driver_sql(statement)
    finally:
        admin.dispose()


def _statements(conn: Connection, query: str, role: str) -> list[str]:
    return list(conn.exec_driver_sql(query, {"role": role}).scalars())


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
    name = make_url(database_url).database
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
