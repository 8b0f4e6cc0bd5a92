"""The network a scenario runs on: the real central bank and operator services, in-process.

Each service is its real FastAPI app with its own freshly migrated PostgreSQL database; the
services reach each other through in-process HTTP transports (signed requests and responses,
exactly as between processes), and the engine calls the operators' service functions directly
for customer traffic. Time is a simulated clock injected into every operator's context, so
limits' days and AML windows follow the scenario, not the wall clock.

An outage makes an operator unreachable: requests to it fail as a refused connection would,
so the others' outboxes retry until it is back.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import anyio.from_thread
import httpx
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from cbdc.crypto import SigningKey
from cbdc.db import create_database, drop_database, migrate
from cbdc.envelope import CENTRAL_BANK_AUDIENCE
from cbdc.http import SignedClient
from cbdc.policy import ClassLimits, Policy, WalletClass, load_policy
from central_bank.app import create_app as create_central_bank
from central_bank.state import CentralBankConfig, CentralBankState
from operators.app import create_app as create_operator
from operators.context import WaterMarks
from operators.state import OperatorConfig, OperatorState
from simulator.scenario import Scenario

T = TypeVar("T")
R = TypeVar("R")

EPOCH = datetime(2027, 1, 4, tzinfo=UTC)  # a Monday: simulated time 0


class SimClock:
    def __init__(self, epoch: datetime = EPOCH) -> None:
        self.epoch = epoch
        self.seconds = 0.0

    def now(self) -> datetime:
        return self.epoch + timedelta(seconds=self.seconds)


class ServiceClient(TestClient):
    """An in-process transport to one service that fails like a dead host during an outage."""

    def __init__(self, app: Any, code: str, down: set[str]) -> None:
        super().__init__(app, base_url=f"http://{code}")
        self._code = code
        self._down = down
        self._loop = contextlib.ExitStack()

    def start_loop(self) -> None:
        """Serve every request on one event loop thread (a TestClient that is not entered
        starts a new one per request, about a millisecond each), without the app's lifespan:
        the simulator starts no background workers."""
        self.portal = self._loop.enter_context(
            anyio.from_thread.start_blocking_portal(**self.async_backend)
        )

    def stop_loop(self) -> None:
        self._loop.close()
        self.portal = None

    def request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> httpx.Response:
        if self._code in self._down:
            raise httpx.ConnectError(f"{self._code} is down (simulated outage)")
        return super().request(method, url, *args, **kwargs)


def side_by_side(work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`work` for each item, one thread each (operators have their own databases, so one's
    Python overlaps another's database work); results in the items' order, the first error
    raised. Inline for fewer than two items."""
    if len(items) < 2:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=len(items)) as executor:
        futures = [executor.submit(work, item) for item in items]
        return [future.result() for future in futures]


def _autovacuum_off(engine: Engine) -> None:
    with engine.begin() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        for table in list(tables):
            conn.execute(text(f'ALTER TABLE "{table}" SET (autovacuum_enabled = off)'))


def _analyze_stale(engine: Engine) -> None:
    """ANALYZE the tables whose row count moved by more than half since they were last
    analysed (`pg_class.reltuples` is the count ANALYZE saw; never analysed: -1). Growth is
    what changes the plans here; a table whose rows are only updated in place (balances,
    spend counters, statuses) keeps its statistics, where autovacuum's rule (changes since
    the last ANALYZE) would analyse `accounts` and `wallets` after every step."""
    with engine.begin() as conn:
        stale = conn.execute(
            text(
                "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                "WHERE CASE WHEN c.reltuples < 0 THEN s.n_live_tup > 0 "
                "ELSE abs(s.n_live_tup - c.reltuples) > greatest(1000, 0.5 * c.reltuples) END "
                "ORDER BY s.relname"
            )
        ).scalars()
        for table in list(stale):
            conn.execute(text(f'ANALYZE "{table}"'))


def apply_limits(policy: Policy, overrides: dict[str, dict[str, int | None]]) -> Policy:
    """`policy` with some class limits replaced: {"IV": {"balance_cap": 200000}, ...}."""
    classes: dict[WalletClass, ClassLimits] = dict(policy.classes)
    for name, given in overrides.items():
        wallet_class = WalletClass.parse(name)
        classes[wallet_class] = replace(classes[wallet_class], **given)  # type: ignore[arg-type]
    return replace(policy, classes=classes)


class SimNetwork:
    def __init__(self, scenario: Scenario, server_url: str) -> None:
        self.scenario = scenario
        self.clock = SimClock()
        self.down: set[str] = set()
        self.codes = [o.code for o in scenario.operators]
        run = uuid.uuid4().hex[:8]
        self.server_url = server_url
        self.database_urls: list[str] = []
        self.cb_key, self.admin_key = SigningKey.generate(), SigningKey.generate()
        cb_url = create_database(server_url, f"sim_{run}_central_bank")
        self.database_urls.append(cb_url)
        migrate(cb_url, "central_bank")
        self.cb_app = create_central_bank(
            CentralBankConfig(
                database_url=cb_url,
                key=self.cb_key,
                admin_public_key=self.admin_key.public_key,
                currency=scenario.meta.currency,
                max_token_amount=10**15,
            )
        )
        self.cb_http = ServiceClient(self.cb_app, "central-bank", self.down)
        self.cb_http.start_loop()
        self.admin = SignedClient(
            self.cb_http,
            key=self.admin_key,
            key_id="admin",
            server_public_key=self.cb_key.public_key,
            audience=CENTRAL_BANK_AUDIENCE,
        )
        policy = load_policy(None, 2)
        if scenario.policy is not None:
            if scenario.policy.overflow:
                policy = replace(policy, overflow=scenario.policy.overflow)
            policy = apply_limits(
                policy, {name: lim.given() for name, lim in scenario.policy.limits.items()}
            )
        self.operator_keys = {code: SigningKey.generate() for code in self.codes}
        self.apps: dict[str, Any] = {}
        self.http: dict[str, ServiceClient] = {}
        for spec in scenario.operators:
            self.admin.request(
                "POST",
                "/v1/admin/operators",
                {
                    "code": spec.code,
                    "name": spec.name,
                    "public_key": self.operator_keys[spec.code].public_key,
                    "quota": spec.quota,
                },
            )
            self.admin.request(
                "POST",
                f"/v1/admin/operators/{spec.code}/reserves",
                {"amount": spec.reserves},
                idempotency_key=f"reserves-{spec.code}",
            )
        for spec in scenario.operators:
            url = create_database(server_url, f"sim_{run}_{spec.code.lower()}")
            self.database_urls.append(url)
            migrate(url, "operator")
            marks = spec.water_marks
            app = create_operator(
                OperatorConfig(
                    database_url=url,
                    code=spec.code,
                    name=spec.name,
                    key=self.operator_keys[spec.code],
                    central_bank_url="http://central-bank",
                    central_bank_public_key=self.cb_key.public_key,
                    peers={c: f"http://{c}" for c in self.codes if c != spec.code},
                    currency=scenario.meta.currency,
                    water_marks=WaterMarks(marks.low, marks.target, marks.high),
                    settlement_mode=scenario.settlement.mode,
                    run_worker=False,
                    central_bank_http=self.cb_http,
                    policy=policy,
                    peer_http_factory=lambda url: self.http[url.removeprefix("http://")],
                )
            )
            self.apps[spec.code] = app
            self.http[spec.code] = ServiceClient(app, spec.code, self.down)
            self.http[spec.code].start_loop()
            self.state(spec.code).ctx.clock = self.clock.now
        self.cb_app.state.cb.clock = self.clock.now  # AML report times are checked against it
        # No autovacuum on the run's throw-away databases: the engine refreshes the planner's
        # statistics itself after each step's setup (`analyze`). On two cores, autovacuum
        # workers vacuuming and analysing the tables a run grows by millions of rows took
        # about a third of a core while the payments ran; nothing here needs vacuuming before
        # the databases are dropped (updated rows are pruned within their pages).
        for engine in self.engines():
            _autovacuum_off(engine)

    # ------------------------------------------------------------ access

    def state(self, code: str) -> OperatorState:
        return self.apps[code].state.operator  # type: ignore[no-any-return]

    @property
    def cb_state(self) -> CentralBankState:
        return self.cb_app.state.cb  # type: ignore[no-any-return]

    def policy(self, code: str) -> Policy:
        return self.state(code).ctx.policy

    def set_policy(self, code: str, policy: Policy) -> None:
        self.state(code).ctx.policy = policy

    def engines(self) -> list[Engine]:
        """The services' database engines: the central bank's, then the operators'."""
        return [self.cb_state.engine, *(self.state(code).engine for code in self.codes)]

    def analyze(self) -> None:
        """Fresh planner statistics on every service's database, side by side."""
        side_by_side(_analyze_stale, self.engines())

    def up(self, code: str) -> bool:
        return code not in self.down

    def close(self, *, drop: bool = True) -> None:
        """Stop the services; drop their databases (the run folder keeps what was measured)."""
        for code in self.apps:
            self.state(code).stop()
        for client in (self.cb_http, *self.http.values()):
            client.stop_loop()
        self.cb_state.engine.dispose()
        if drop:
            for url in self.database_urls:
                drop_database(self.server_url, url)
