"""The central bank service's process-wide state (engine, keys, auth), built by `app.py`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from cbdc.clock import utcnow
from cbdc.crypto import SigningKey
from cbdc.db import make_engine, session_factory, transaction
from cbdc.envelope import CENTRAL_BANK_AUDIENCE
from cbdc.outages import log_failure
from cbdc.web.auth import ResolvedKey, SignedRequestAuth, UnitOfWork
from cbdc.web.metrics import ServiceMetrics
from central_bank.certification.service import bootstrap
from central_bank.clearing import cycles, stats, submissions
from central_bank.context import CentralBank
from central_bank.models import Operator

log = logging.getLogger(__name__)


@dataclass
class CentralBankConfig:
    database_url: str
    key: SigningKey
    admin_public_key: str
    currency: str = "CNY"
    currency_decimals: int = 2
    max_token_amount: int = 1_000_000_00
    regulator_public_key: str | None = None
    pool_size: int = 8
    # Clearing (deferred net settlement): a cycle closes every `net_interval_seconds` (the
    # timer runs only inside the app's lifespan, never in tests that do not start it) and as
    # soon as `net_max_items` submitted payments wait.
    net_interval_seconds: float = 5.0
    net_max_items: int = 1000
    clearing_timer: bool = True
    metrics_token: str | None = None  # bearer token for GET /metrics; None: metrics are off


@dataclass
class CentralBankState:
    config: CentralBankConfig
    engine: Engine = field(init=False)
    cb: CentralBank = field(init=False)
    uow: UnitOfWork = field(init=False)
    auth: SignedRequestAuth = field(init=False)
    metrics: ServiceMetrics = field(init=False)
    _operator_keys: dict[str, str] = field(default_factory=dict)
    # The central bank's one clock: every time its services stamp (certificates, tokens,
    # receipts, ledger entries, operations, clearing, AML reports, anchors) and the check of
    # times operators report (AML `occurred_at`) come from it. Tests and the scenario engine
    # may set a simulated clock here, as in every operator's context.
    clock: Callable[[], datetime] = utcnow

    def __post_init__(self) -> None:
        c = self.config
        self.engine = make_engine(c.database_url, pool_size=c.pool_size)
        self.factory = session_factory(self.engine)
        self.cb = CentralBank(
            key=c.key,
            currency=c.currency,
            max_token_amount=c.max_token_amount,
            decimals=c.currency_decimals,
        )
        self.uow = UnitOfWork(self.factory)
        self.auth = SignedRequestAuth(self.resolve_key, audience=CENTRAL_BANK_AUDIENCE)
        transaction(self.factory, bootstrap)
        self.metrics = ServiceMetrics(
            service="central_bank",
            name="central_bank",
            engine=self.engine,
            queue_depths=lambda: transaction(self.factory, stats.queue_depths),
        )

    @property
    def decimals(self) -> int:
        return self.config.currency_decimals

    def close_cycle(self, trigger: cycles.Trigger = "manual") -> dict[str, Any] | None:
        """Close a clearing cycle in a transaction of its own (timer, threshold, simulator)."""
        return transaction(
            self.factory,
            lambda s: cycles.close_cycle(s, self.cb, now=self.clock(), trigger=trigger),
        )

    def close_if_full(self) -> None:
        """Close a cycle now if `net_max_items` submitted payments wait (after a submission)."""
        try:
            if transaction(self.factory, submissions.waiting_items) >= self.config.net_max_items:
                self.close_cycle("max_items")
        except Exception as exc:  # the submission is stored; the timer closes the cycle otherwise
            log_failure(log, "closing a full clearing cycle", exc)

    def resolve_key(self, key_id: str, _body: bytes) -> ResolvedKey | None:
        if key_id == "admin":
            return ResolvedKey("admin", "admin", self.config.admin_public_key)
        if key_id == "regulator" and self.config.regulator_public_key:
            return ResolvedKey("regulator", "regulator", self.config.regulator_public_key)
        if key_id.startswith("operator:"):
            code = key_id.split(":", 1)[1]
            public_key = self._operator_keys.get(code)
            if public_key is None:
                with self.factory() as session:
                    public_key = session.scalar(
                        select(Operator.public_key).where(Operator.code == code)
                    )
                if public_key is None:
                    return None
                self._operator_keys[code] = public_key
            return ResolvedKey("operator", code, public_key)
        return None
