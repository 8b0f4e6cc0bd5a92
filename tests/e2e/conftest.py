"""End-to-end fixtures: a real network (central bank + two operators as uvicorn processes on
127.0.0.1) started once for the e2e tests with `orchestration.network.Network`, on the PostgreSQL
server the test session started (`pg_url`), plus helpers to run the `cbdc` CLI as a subprocess.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from cbdc.crypto import SigningKey
from cbdc.http import SignedClient
from cbdc.settings import NetworkConfig, Settings
from orchestration.network import Network, port_is_free
from tests.conftest import person_evidence
from wallets.client import OperatorClient, WalletClient

REPO = Path(__file__).resolve().parents[2]


def free_port_base(count: int) -> int:
    """A base port such that base .. base+count-1 are all free on 127.0.0.1."""
    rng = random.Random()
    for _ in range(200):
        # below the ephemeral range (32768-60999 here), which outgoing connections take from
        base = rng.randrange(20_000, 32_000)
        if all(port_is_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free block of ports on 127.0.0.1")


def cbdc_executable() -> str:
    candidates = [REPO / ".venv" / "bin" / "cbdc", Path(sys.executable).parent / "cbdc"]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("cbdc")
    if found is None:
        raise RuntimeError("the `cbdc` console script is not installed")
    return found


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for CLI subprocesses: wide, colourless output so assertions see whole lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CBDC_")}
    env.update({"COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb", **extra})
    return env


def run_cli(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cbdc_executable(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env or cli_env(),
    )


@dataclass
class LiveNetwork:
    config: NetworkConfig
    data_dir: Path
    network: Network

    def staff(self, code: str) -> SignedClient:
        node = self.config.operator(code)
        return SignedClient(
            httpx.Client(base_url=node.url, timeout=60),
            key=SigningKey.load(Path(node.key_file)),
            key_id=f"operator:{code}",
            audience=f"operator:{code}",
        )

    def staff_key(self, code: str) -> SigningKey:
        return SigningKey.load(Path(self.config.operator(code).key_file))

    def credit_deposit(self, code: str, customer_id: int, amount: int) -> dict:
        return self.staff(code).request(  # type: ignore[no-any-return]
            "POST",
            f"/v1/admin/customers/{customer_id}/deposit",
            {"amount": amount},
            idempotency_key=str(uuid.uuid4()),
        )


def drop_databases(server_url: str, prefix: str) -> None:
    engine = create_engine(
        make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as conn:
            names = (
                conn.exec_driver_sql(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "\\_%",)
                )
                .scalars()
                .all()
            )
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
            roles = (
                conn.exec_driver_sql(  # each service's own role (cbdc.db)
                    "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (prefix + "\\_%",)
                )
                .scalars()
                .all()
            )
            for role in roles:
                conn.exec_driver_sql(f'DROP ROLE "{role}"')
    finally:
        engine.dispose()


@contextmanager
def own_network(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[LiveNetwork]:
    """A live network of its own for a test that kills or stops its services (two operators,
    on `pg_url`); stopped and its databases dropped afterwards."""
    data_dir = tmp_path_factory.mktemp(f"{name}-network")
    settings = Settings(database_url=pg_url, data_dir=data_dir, port=free_port_base(3))
    prefix = f"{name}_{uuid.uuid4().hex[:10]}"
    network = Network(settings, db_prefix=prefix)
    try:
        network.prepare()
        config = network.start()
        yield LiveNetwork(config=config, data_dir=network.data_dir, network=network)
    finally:
        network.stop(stop_database=False)
        drop_databases(pg_url, prefix)


def open_wallet(live: LiveNetwork, code: str, *, load: int, name: str) -> WalletClient:
    """A new wallet at operator `code`, loaded with `load` from a deposit staff credit."""
    op = OperatorClient.connect(live.config.operator(code).url)
    wallet = op.open_wallet(display_name=f"{name} {code}", phone=person_evidence()["phone"])
    if load:
        live.credit_deposit(code, wallet.balance().customer_id, load)
        wallet.load(load)
    return wallet


@pytest.fixture(scope="session")
def live_network(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNetwork]:
    data_dir = tmp_path_factory.mktemp("e2e-network")
    operators = 2
    settings = Settings(
        database_url=pg_url,
        data_dir=data_dir,
        port=free_port_base(operators + 1),
        operators=operators,
    )
    prefix = f"e2e_{uuid.uuid4().hex[:10]}"
    network = Network(settings, db_prefix=prefix)
    try:
        network.prepare()
        config = network.start()
    except Exception:
        network.stop(stop_database=False)
        drop_databases(pg_url, prefix)
        raise
    yield LiveNetwork(config=config, data_dir=network.data_dir, network=network)
    network.stop(stop_database=False)
    drop_databases(pg_url, prefix)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/e2e starts real processes: marked `e2e` (the fast lane is
    `pytest -m "not e2e"`; `.ci/run` runs everything)."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)
