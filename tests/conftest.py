"""Test fixtures: a real PostgreSQL started by the test session itself (embedded, not durable:
fsync off), databases built by the real Alembic migrations, and an in-process network (central
bank + two operators) whose services call each other through in-process HTTP transports.

Test databases (`new_database`) are copies of templates the migrations built once per session,
dropped when the test that made them is done (tests/databases.py).

Set CBDC_TEST_DATABASE_URL to a server-level URL to use an existing server instead.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cbdc.crypto import SigningKey
from cbdc.http import SignedClient
from cbdc.identity import make_bank_account, make_resident_id
from cbdc.pg import EmbeddedPostgres
from central_bank.app import create_app as create_central_bank
from central_bank.state import CentralBankConfig
from operators.app import create_app as create_operator
from operators.context import WaterMarks
from operators.state import OperatorConfig, OperatorState
from regulator.client import RegulatorKeys
from tests import databases
from tests.databases import new_database
from wallets.client import OperatorClient, WalletClient


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    existing = os.environ.get("CBDC_TEST_DATABASE_URL")
    if existing:
        yield existing
        databases.close_all()  # the templates, unused copies, anything left over
        return
    # Not under pytest's tmp dir: that is private to root, and under root PostgreSQL runs as an
    # unprivileged user who must be able to reach its data directory.
    directory = Path(tempfile.mkdtemp(prefix="cbdc-test-pg-"))
    directory.chmod(0o755)
    # Not durable (fsync off): the cluster is thrown away. Tests that crash a server and count
    # what survived start a durable one of their own (tests/e2e/test_database_crash.py).
    server = EmbeddedPostgres(directory, durable=False)
    url = server.start()
    yield url
    databases.close_all()
    server.stop(immediate=True)  # the cluster is deleted next: no need for a checkpoint
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def drop_test_databases() -> Iterator[None]:
    """Drop the databases made during a test (`new_database`) once it and its fixtures are
    done: autouse, so set up before and torn down after the fixtures that use them."""
    before = len(databases.created)
    yield
    made = databases.created[before:]
    del databases.created[before:]
    databases.drop_databases(made)


VALID_ID_NUMBER = make_resident_id("11010119900307765")  # check digit per GB 11643
VALID_BANK_ACCOUNT = make_bank_account("621700000000000")  # Luhn
_PEOPLE = itertools.count(1)  # each fixture wallet its own evidence (policy `[uniqueness]`)


def person_evidence() -> dict[str, str]:
    """A phone, ID number and bank account no other test wallet uses."""
    n = next(_PEOPLE)
    return {
        "phone": f"+86150{n:08d}",
        "id_number": make_resident_id(f"220202{n:011d}"),
        "bank_account": make_bank_account(f"6222{n:011d}"),
    }


@dataclass
class InProcessNetwork:
    """A central bank and operators BKA1, BKB1 wired through in-process transports."""

    cb_key: SigningKey
    admin_key: SigningKey
    cb_app: Any
    cb: TestClient
    operator_keys: dict[str, SigningKey]
    operator_apps: dict[str, Any] = field(default_factory=dict)
    operator_http: dict[str, TestClient] = field(default_factory=dict)
    regulator: RegulatorKeys = field(default_factory=RegulatorKeys.generate)
    currency: str = "CNY"

    @property
    def admin(self) -> SignedClient:
        return SignedClient(
            self.cb,
            key=self.admin_key,
            key_id="admin",
            server_public_key=self.cb_key.public_key,
            audience="central-bank",
        )

    def staff(self, code: str) -> SignedClient:
        return SignedClient(
            self.operator_http[code],
            key=self.operator_keys[code],
            key_id=f"operator:{code}",
            audience=f"operator:{code}",
        )

    def state(self, code: str) -> OperatorState:
        return self.operator_apps[code].state.operator  # type: ignore[no-any-return]

    def operator(self, code: str) -> OperatorClient:
        return OperatorClient(self.operator_http[code])

    def open_wallet(
        self,
        code: str,
        *,
        wallet_class: str = "IV",
        deposit: int = 0,
        load: int = 0,
        name: str = "Test Customer",
    ) -> WalletClient:
        """Open a wallet (staff-assisted unless class IV), fund its deposit, load it."""
        op = self.operator(code)
        evidence: dict[str, Any] = person_evidence()  # keyword arguments of several types
        if wallet_class == "IV":
            wallet = op.open_wallet(display_name=name, phone=evidence["phone"])
        else:
            wallet = op.open_wallet(
                display_name=name,
                **evidence,
                wallet_class=wallet_class,
                staff_key=self.operator_keys[code],
            )
        if deposit or load:
            info = wallet.balance()
            self.staff(code).request(
                "POST",
                f"/v1/admin/customers/{info.customer_id}/deposit",
                {"amount": max(deposit, load)},
                idempotency_key=str(uuid.uuid4()),
            )
        if load:
            wallet.load(load)
        return wallet

    def run_jobs(self) -> None:
        """Run every operator's outbox until nothing is due (what the worker does)."""
        for _ in range(20):
            ran = sum(self.state(code).runner.run_due() for code in self.operator_apps)
            if not ran:
                return


@pytest.fixture
def network(pg_url: str, request: pytest.FixtureRequest) -> Iterator[InProcessNetwork]:
    """Parametrize indirectly with a `cbdc.policy.Policy` to run under another policy."""
    yield from in_process_network(pg_url, policy=getattr(request, "param", None))


def in_process_network(
    pg_url: str, *, policy: Any = None, metrics_token: str | None = None
) -> Iterator[InProcessNetwork]:
    """A fresh central bank and operators BKA1, BKB1 (generator: stops them afterwards)."""
    cb_key, admin_key = SigningKey.generate(), SigningKey.generate()
    regulator = RegulatorKeys.generate()
    cb_app = create_central_bank(
        CentralBankConfig(
            database_url=new_database(pg_url, "central_bank"),
            key=cb_key,
            admin_public_key=admin_key.public_key,
            max_token_amount=1_000_000_00,
            regulator_public_key=regulator.signing.public_key,
            metrics_token=metrics_token,
        )
    )
    cb = TestClient(cb_app)
    codes = ["BKA1", "BKB1"]
    net = InProcessNetwork(
        cb_key=cb_key,
        admin_key=admin_key,
        cb_app=cb_app,
        cb=cb,
        operator_keys={c: SigningKey.generate() for c in codes},
        regulator=regulator,
    )
    for code in codes:
        net.admin.request(
            "POST",
            "/v1/admin/operators",
            {
                "code": code,
                "name": f"Bank {code}",
                "public_key": net.operator_keys[code].public_key,
                "quota": 10**12,
            },
        )
        net.admin.request(
            "POST",
            f"/v1/admin/operators/{code}/reserves",
            {"amount": 10**11},
            idempotency_key=f"reserves-{code}",
        )
    for code in codes:
        app = create_operator(
            OperatorConfig(
                database_url=new_database(pg_url, "operator"),
                code=code,
                name=f"Bank {code}",
                key=net.operator_keys[code],
                central_bank_url="http://testserver",
                central_bank_public_key=cb_key.public_key,
                peers={c: f"http://{c}" for c in codes if c != code},
                water_marks=WaterMarks(low=100_000_00, target=1_000_000_00, high=5_000_000_00),
                run_worker=False,
                central_bank_http=cb,
                regulator_signing_key=regulator.signing.public_key,
                regulator_sealing_key=regulator.sealing.public_key,
                policy=policy,
                peer_http_factory=lambda url: net.operator_http[url.removeprefix("http://")],
                metrics_token=metrics_token,
            )
        )
        net.operator_apps[code] = app
        net.operator_http[code] = TestClient(app)
    yield net
    for code in codes:
        net.state(code).stop()
    cb_app.state.cb.engine.dispose()


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
