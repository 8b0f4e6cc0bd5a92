"""A running network (services as uvicorn processes) keeps its secrets and its database to
itself (issue #12, findings 4 and 7): the services log in to PostgreSQL as roles of their own,
and what they and `Network` write (metric files, logs, keys, network.json) is private."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cbdc.settings import network_file
from orchestration.network import metrics_dir
from tests.e2e.conftest import LiveNetwork


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_services_connect_as_their_own_roles(live_network: LiveNetwork) -> None:
    config = live_network.config
    urls = [config.central_bank.database_url, *(o.database_url for o in config.operators)]
    roles = set()
    for url in urls:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                role, superuser = conn.execute(
                    text("SELECT rolname, rolsuper FROM pg_roles WHERE rolname = current_user")
                ).one()
        finally:
            engine.dispose()
        assert role == make_url(url).database and not superuser
        roles.add(role)
    assert len(roles) == len(urls)
    # the first operator's login, at the central bank's database
    foreign = make_url(urls[1]).set(database=make_url(urls[0]).database)
    engine = create_engine(foreign)
    try:
        with pytest.raises(Exception, match="permission denied for database"):
            engine.connect()
    finally:
        engine.dispose()


def test_what_the_network_writes_is_private(live_network: LiveNetwork) -> None:
    data_dir = live_network.data_dir
    for node in live_network.config.operators:  # something recorded in every service
        assert httpx.get(f"{node.url}/health", timeout=10).status_code == 200
    assert mode(network_file(data_dir)) == 0o600
    for directory in ("keys", "logs", "metrics", "regulator"):
        assert mode(data_dir / directory) == 0o700, directory
    for path in (data_dir / "keys").iterdir():
        assert mode(path) == 0o600, path
    for path in (data_dir / "logs").iterdir():
        assert mode(path) == 0o600, path
    service_dir = metrics_dir(data_dir, "central_bank")
    assert mode(service_dir) == 0o700
    written = list(service_dir.iterdir())
    assert written, "the service wrote no metric files"
    for path in written:
        assert mode(path) == 0o600, path
