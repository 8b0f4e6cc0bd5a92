"""A database nobody else enters (issue #12, finding 4) and secrets private from creation (the
file-mode part of finding 7).

- The embedded server wants a password (SCRAM-SHA-256) on TCP and on its Unix socket, also
  after a restart, and a cluster made by an older version (`trust`) is closed on its next
  start.
- Each service connects as a role of its own: no superuser, no CREATEDB/CREATEROLE, owner of
  its database and of everything its migrations make, refused at every other database.
- `network.json`, everything in `keys/` and the superuser's secret are 0600 and `keys/` 0700,
  set when made (no chmod afterwards).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cbdc.db import create_database, create_service_database, migrate
from cbdc.files import private_dir, write_private
from cbdc.pg import SUPERUSER, EmbeddedPostgres, read_pgpass_password
from cbdc.settings import Settings, network_file
from orchestration.network import Network


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def scratch_dir() -> Path:
    # Not under pytest's tmp dir (private to root): the server's user must reach its cluster.
    directory = Path(tempfile.mkdtemp(prefix="cbdc-test-auth-"))
    directory.chmod(0o755)
    return directory


@pytest.fixture(scope="module")
def embedded() -> Iterator[EmbeddedPostgres]:
    """An embedded server of this module's own (the session's may be an external one)."""
    directory = scratch_dir()
    server = EmbeddedPostgres(directory)
    server.start()
    yield server
    server.stop(immediate=True)
    shutil.rmtree(directory, ignore_errors=True)


def connect(server: EmbeddedPostgres, **params: object) -> psycopg.Connection:
    base = {
        "host": "127.0.0.1",
        "port": server.port,
        "user": SUPERUSER,
        "dbname": "postgres",
        "connect_timeout": 5,
        "passfile": os.devnull,
    }  # never a ~/.pgpass by accident
    return psycopg.connect(**{**base, **params})  # type: ignore[arg-type]


def refused(server: EmbeddedPostgres, **params: object) -> str:
    with pytest.raises(psycopg.OperationalError) as caught:
        connect(server, **params).close()
    return str(caught.value)


# ------------------------------------------------------------------ the embedded server


@pytest.mark.e2e  # starts a PostgreSQL server of its own
def test_embedded_server_refuses_connections_without_the_password(
    embedded: EmbeddedPostgres,
) -> None:
    assert "no password supplied" in refused(embedded)
    assert "password authentication failed" in refused(embedded, password="wrong")
    # the Unix socket (in the cluster's directory) asks for it too
    assert "no password supplied" in refused(embedded, host=str(embedded.pgdata))
    # another user of the machine trying the superuser's name, or any other name
    assert "password authentication failed" in refused(embedded, user="postgres", password="x")
    password = read_pgpass_password(embedded.secret_file)
    assert password
    with connect(embedded, password=password) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (SUPERUSER,)
    with connect(embedded, host=str(embedded.pgdata), password=password) as conn:
        method = conn.execute(
            "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'local'"
        ).fetchall()
        assert method == [("scram-sha-256",)]
        rules = conn.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules").fetchall()
        assert rules == [("scram-sha-256",)]
        listening = conn.execute("SHOW listen_addresses").fetchone()
        assert listening == ("127.0.0.1",)


@pytest.mark.e2e  # starts a PostgreSQL server of its own
def test_the_url_names_the_secret_file_and_carries_no_password(
    embedded: EmbeddedPostgres,
) -> None:
    url = make_url(embedded.url)
    assert url.password is None
    assert url.query["passfile"] == str(embedded.secret_file)
    engine = create_engine(embedded.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == SUPERUSER
    finally:
        engine.dispose()


@pytest.mark.e2e  # starts a PostgreSQL server of its own
def test_superuser_secret_is_private_and_outside_the_cluster(embedded: EmbeddedPostgres) -> None:
    assert mode(embedded.secret_file) == 0o600
    assert embedded.secret_file.stat().st_uid == os.geteuid()
    assert embedded.pgdata not in embedded.secret_file.parents


@pytest.mark.e2e  # starts a PostgreSQL server of its own
def test_maintenance_databases_are_closed_to_ordinary_roles(embedded: EmbeddedPostgres) -> None:
    password = read_pgpass_password(embedded.secret_file)
    role = f"t_plain_{uuid.uuid4().hex[:8]}"
    with connect(embedded, password=password, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'")
    try:
        for database in ("postgres", "template1"):
            assert "permission denied for database" in refused(
                embedded, user=role, password="pw", dbname=database
            )
    finally:
        with connect(embedded, password=password, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


@pytest.mark.e2e  # starts a PostgreSQL server of its own
def test_restart_on_the_same_port_keeps_asking_for_the_password() -> None:
    directory = scratch_dir()
    server = EmbeddedPostgres(directory)
    try:
        url = server.start()
        port = server.port
        server.stop(immediate=True)
        assert server.start() == url and server.port == port
        assert "no password supplied" in refused(server)
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
        engine.dispose()
    finally:
        server.destroy()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.e2e  # starts a PostgreSQL server of its own
def test_a_cluster_that_trusted_everyone_is_closed_on_its_next_start() -> None:
    """Clusters made before passwords (`initdb -A trust`) keep their data and lose the door."""
    directory = scratch_dir()
    server = EmbeddedPostgres(directory)
    try:
        server.pgdata.mkdir(parents=True)
        server._chown(server.pgdata)
        server.pgdata.chmod(0o700)
        server._run(
            [
                "initdb",
                "-D",
                str(server.pgdata),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
            ]
        )
        assert not server.secret_file.exists()
        server.start()
        assert "no password supplied" in refused(server)
        assert "no password supplied" in refused(server, host=str(server.pgdata))
        assert mode(server.secret_file) == 0o600
        with connect(server, password=read_pgpass_password(server.secret_file)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.destroy()
        shutil.rmtree(directory, ignore_errors=True)


# ------------------------------------------------------------------ service roles


def _drop(pg_url: str, *names: str) -> None:
    admin = create_engine(make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{name}"')
    finally:
        admin.dispose()


@pytest.fixture
def two_services(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two service databases made as `orchestration.network` makes them, the second migrated."""
    keys = private_dir(tmp_path / "keys")
    names = [f"t_svc_{uuid.uuid4().hex[:8]}_{kind}" for kind in ("central_bank", "operator")]
    try:
        urls = [
            create_service_database(pg_url, name, passfile=keys / f"{name}.pgpass")
            for name in names
        ]
        migrate(urls[0], "central_bank")
        migrate(urls[1], "operator")
        yield urls[0], urls[1]
    finally:
        _drop(pg_url, *names)


def _whoami(url: str) -> tuple[str, bool, bool, bool, bool]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return tuple(  # type: ignore[return-value]
                conn.execute(
                    text(
                        "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls "
                        "FROM pg_roles WHERE rolname = current_user"
                    )
                ).one()
            )
    finally:
        engine.dispose()


def test_each_service_is_a_role_of_its_own_and_no_superuser(
    two_services: tuple[str, str],
) -> None:
    for url in two_services:
        name = make_url(url).database
        assert make_url(url).username == name
        assert make_url(url).password is None  # in the 0600 password file the URL names
        assert mode(Path(make_url(url).query["passfile"])) == 0o600  # type: ignore[arg-type]
        assert _whoami(url) == (name, False, False, False, False)


def test_a_service_role_cannot_enter_another_services_database(
    two_services: tuple[str, str],
) -> None:
    central_bank, operator = two_services
    foreign = make_url(operator).set(database=make_url(central_bank).database)
    engine = create_engine(foreign)
    try:
        with pytest.raises(Exception, match="permission denied for database"):
            engine.connect()
    finally:
        engine.dispose()


def test_service_role_owns_everything_its_migrations_made(two_services: tuple[str, str]) -> None:
    for url in two_services:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                foreign = conn.execute(text(FOREIGN_OBJECTS)).all()
                assert foreign == []
                tables = conn.execute(
                    text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                ).scalar()
                assert tables and tables > 5
                with pytest.raises(Exception, match="permission denied to create database"):
                    conn.execute(text("CREATE DATABASE t_not_allowed"))
                with pytest.raises(Exception, match="permission denied to create role"):
                    conn.execute(text("CREATE ROLE t_not_allowed"))
        finally:
            engine.dispose()


# Objects in `public` (relations, routines) that the connected role does not own.
FOREIGN_OBJECTS = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
UNION ALL
SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
"""


def test_a_database_made_by_the_superuser_is_handed_to_its_new_role(
    pg_url: str, tmp_path: Path
) -> None:
    """A network laid out before service roles: its database and objects belong to the
    superuser; the next `prepare` gives them to the service's role, which can work in them."""
    name = f"t_svc_{uuid.uuid4().hex[:8]}_legacy"
    try:
        migrate(create_database(pg_url, name), "operator")
        url = create_service_database(pg_url, name, passfile=tmp_path / "legacy.pgpass")
        migrate(url, "operator")  # nothing to do, and allowed
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text(FOREIGN_OBJECTS)).all() == []
                assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        finally:
            engine.dispose()
    finally:
        _drop(pg_url, name)


def test_a_server_user_who_may_not_create_roles_is_used_as_it_is(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """CBDC_DATABASE_URL naming a user without CREATEROLE: the services use that user, and
    the log says so."""
    user = f"t_plain_{uuid.uuid4().hex[:8]}"
    name = f"t_svc_{uuid.uuid4().hex[:8]}_plain"
    passfile = write_private(tmp_path / "plain.pgpass", f"*:*:*:{user}:pw-{user}\n")
    admin = create_engine(make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {user} LOGIN CREATEDB PASSWORD 'pw-{user}'")
        # the embedded server closes `postgres` to ordinary roles; another server may not
        conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE postgres TO {user}")
    try:
        server = make_url(pg_url).set(username=user, query={"passfile": str(passfile)})
        with caplog.at_level(logging.WARNING, logger="cbdc.db"):
            url = create_service_database(
                server.render_as_string(hide_password=False),
                name,
                passfile=tmp_path / "service.pgpass",
            )
        assert make_url(url).username == user and make_url(url).database == name
        assert f"may not create roles and databases; the service connects as {user}" in (
            caplog.text
        )
        assert not (tmp_path / "service.pgpass").exists()
    finally:
        _drop(pg_url, name)
        with admin.connect() as conn:
            conn.exec_driver_sql(f"REVOKE CONNECT ON DATABASE postgres FROM {user}")
            conn.exec_driver_sql(f"DROP ROLE {user}")
        admin.dispose()


def test_an_administrator_who_is_not_a_superuser_still_makes_service_roles(
    pg_url: str, tmp_path: Path
) -> None:
    """CBDC_DATABASE_URL naming a user with CREATEROLE and CREATEDB (a managed server's usual
    administrator, not a superuser): the services still get roles of their own."""
    user = f"t_admin_{uuid.uuid4().hex[:8]}"
    name = f"t_svc_{uuid.uuid4().hex[:8]}_managed"
    passfile = write_private(tmp_path / "admin.pgpass", f"*:*:*:{user}:pw-{user}\n")
    admin = create_engine(make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {user} LOGIN CREATEDB CREATEROLE PASSWORD 'pw-{user}'")
        conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE postgres TO {user}")
    try:
        server = make_url(pg_url).set(username=user, query={"passfile": str(passfile)})
        url = create_service_database(
            server.render_as_string(hide_password=False),
            name,
            passfile=tmp_path / "service.pgpass",
        )
        migrate(url, "operator")
        assert _whoami(url) == (name, False, False, False, False)
    finally:
        _drop(pg_url, name)
        with admin.connect() as conn:
            conn.exec_driver_sql(f"REVOKE CONNECT ON DATABASE postgres FROM {user}")
            conn.exec_driver_sql(f"DROP ROLE {user}")
        admin.dispose()


# ------------------------------------------------------------------ files


def test_network_files_are_private_from_creation(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`prepare` makes keys/ 0700 and network.json, every key, password file, data key and
    the metrics token 0600 as they are created: nothing in them is chmod-ed afterwards."""
    chmodded: list[str] = []
    real_chmod = os.chmod

    def spy(path: object, *args: object, **kwargs: object) -> None:
        chmodded.append(str(path))
        real_chmod(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "chmod", spy)
    data_dir = tmp_path / "net"
    prefix = f"t_files_{uuid.uuid4().hex[:6]}"
    network = Network(
        Settings(database_url=pg_url, data_dir=data_dir, operators=2), db_prefix=prefix
    )
    try:
        config = network.prepare()
    finally:
        _drop(
            pg_url, *(f"{prefix}_{n}" for n in ("central_bank", "operator_bka1", "operator_bkb1"))
        )
    keys = data_dir / "keys"
    assert mode(keys) == 0o700
    assert mode(data_dir / "regulator") == 0o700
    assert mode(network_file(data_dir)) == 0o600
    files = sorted(p.name for p in keys.iterdir())
    assert {
        "central_bank.key",
        "admin.key",
        "metrics.token",
        "central_bank.pgpass",
        "operator_BKA1.datakey",
        "operator_BKA1.pgpass",
        "operator_BKA1.key",
    } <= set(files)
    for path in keys.iterdir():
        assert mode(path) == 0o600, path
    for path in (data_dir / "regulator").glob("*.key"):
        assert mode(path) == 0o600, path
    assert Path(config.metrics_token_file or "") == keys / "metrics.token"
    private = [
        p
        for p in chmodded
        if p.startswith(str(keys))
        or p.endswith("network.json")
        or p.startswith(str(data_dir / "regulator"))
    ]
    assert private == []
    # and the services' URLs in network.json carry no password
    for url in [config.central_bank.database_url, *(o.database_url for o in config.operators)]:
        assert make_url(url).password is None
        assert (make_url(url).username or "").startswith(prefix)


def test_write_private_makes_0600_files_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private(tmp_path / "a", "secret")
        write_private(tmp_path / "b", b"secret", exclusive=True)
        made = private_dir(tmp_path / "d")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a") == 0o600 and mode(tmp_path / "b") == 0o600
    assert mode(made) == 0o700
    with pytest.raises(FileExistsError):
        write_private(tmp_path / "b", "again", exclusive=True)
    assert (tmp_path / "b").read_text() == "secret"


def test_write_private_narrows_a_file_an_older_version_left_readable(tmp_path: Path) -> None:
    path = tmp_path / "network.json"
    path.write_text("{}")
    path.chmod(0o644)
    write_private(path, '{"new": true}')
    assert mode(path) == 0o600 and path.read_text() == '{"new": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["network.json"]  # no temporary left
    old_dir = tmp_path / "keys"
    old_dir.mkdir(mode=0o755)
    old_dir.chmod(0o755)
    assert mode(private_dir(old_dir)) == 0o700
