"""An operator service's process-wide state: engine, context, auth, job runner, worker."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
from fastapi import Request
from sqlalchemy.orm import Session

from cbdc.crypto import SigningKey
from cbdc.db import make_engine, session_factory, transaction
from cbdc.envelope import operator_audience
from cbdc.errors import DomainError
from cbdc.outages import database_unavailable
from cbdc.policy import Policy, load_policy
from cbdc.settings import SettlementMode
from cbdc.strictjson import loads_unique
from cbdc.tokens import sign_document
from cbdc.web.auth import Principal, ResolvedKey, SignedRequestAuth, UnitOfWork
from cbdc.web.metrics import ServiceMetrics
from operators import repository as repo
from operators.clients import CentralBankClient, PeerClients
from operators.compliance.jobs import JOBS as COMPLIANCE_JOBS
from operators.context import OperatorContext, WaterMarks
from operators.errors import VaultFloatInsufficient
from operators.exchange.service import VaultShortfall
from operators.jobs import JobRunner, OutboxWorker, job_table
from operators.offline import repository as offline_repo
from operators.offline.jobs import JOBS as OFFLINE_JOBS
from operators.payments.microbatch import PaymentBatcher
from operators.programmable import escrow_jobs, schedules_run, voucher_jobs, voucher_refunds
from operators.settlement import netting
from operators.settlement.jobs import JOBS as SETTLEMENT_JOBS
from operators.settlement.rtgs_settler import RtgsSettler
from operators.vault import service as vault
from operators.vault.jobs import JOBS as VAULT_JOBS
from operators.vault.jobs import check_water_marks
from operators.wallets import identity_history
from operators.wallets import repository as wallet_repo
from operators.wallets.identity import IdentityCipher


@dataclass
class OperatorConfig:
    database_url: str
    code: str
    name: str
    key: SigningKey
    central_bank_url: str
    central_bank_public_key: str
    peers: dict[str, str] = field(default_factory=dict)
    policy_file: str | None = None
    currency: str = "CNY"
    currency_decimals: int = 2
    water_marks: WaterMarks = field(default_factory=lambda: WaterMarks(10**8, 5 * 10**8, 2 * 10**9))
    settlement_mode: SettlementMode = "rtgs"
    net_interval_seconds: float = 5.0
    net_max_items: int = 1000
    run_worker: bool = True
    pool_size: int = 8
    # Micro-batch transactions of single payments in flight at once, per worker process.
    payment_threads: int = field(
        default_factory=lambda: int(os.environ.get("CBDC_PAYMENT_THREADS", "2"))
    )
    # Identity at rest is encrypted under this key; it must persist across restarts.
    data_key: bytes = field(default_factory=IdentityCipher.generate_key)
    regulator_signing_key: str | None = None  # verifies disclosure orders
    regulator_sealing_key: str | None = None  # identity escrow is sealed to it
    policy: Policy | None = None  # overrides policy_file (scenarios, tests)
    metrics_token: str | None = None  # bearer token for GET /metrics; None: metrics are off
    demo_deposits: bool = True  # wallets may credit their own deposit (POST .../demo-deposit)
    # Tests inject in-process transports here.
    central_bank_http: httpx.Client | None = None
    peer_http_factory: Callable[[str], httpx.Client] | None = None


log = logging.getLogger(__name__)
# Every outbox job kind with the handler of the area that queues it (`operators.jobs`).
JOBS = job_table(VAULT_JOBS, SETTLEMENT_JOBS, COMPLIANCE_JOBS, OFFLINE_JOBS)
# Work the areas find due in their own tables, run with the jobs (`operators.jobs.Sweep`).
SWEEPS = (schedules_run.sweep, escrow_jobs.expire_due, voucher_jobs.expire_due)
# How long a cross-operator payment's request waits for its batch to settle and be delivered
# before it answers `pending_settlement` (the outbox completes it then).
RTGS_WAIT_SECONDS = 5.0


class OperatorState:
    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        # Generous overflow: a running outbox job holds a connection for its advisory lock
        # while its transactions use others (operators/jobs.py).
        self.engine = make_engine(config.database_url, pool_size=config.pool_size, max_overflow=60)
        self.factory = session_factory(self.engine)
        cb_http = config.central_bank_http or httpx.Client(
            base_url=config.central_bank_url, timeout=10
        )
        self.ctx = OperatorContext(
            code=config.code,
            name=config.name,
            key=config.key,
            policy=config.policy or load_policy(config.policy_file, config.currency_decimals),
            currency=config.currency,
            decimals=config.currency_decimals,
            central_bank=CentralBankClient(
                cb_http,
                code=config.code,
                key=config.key,
                central_bank_public_key=config.central_bank_public_key,
            ),
            central_bank_public_key=config.central_bank_public_key,
            peers=PeerClients(
                code=config.code,
                key=config.key,
                url_for=config.peers.get,
                http_factory=config.peer_http_factory,
            ),
            water_marks=config.water_marks,
            settlement_mode=config.settlement_mode,
            net_interval_seconds=config.net_interval_seconds,
            net_max_items=config.net_max_items,
            identity_cipher=IdentityCipher(config.data_key),
            regulator_signing_key=config.regulator_signing_key,
            regulator_sealing_key=config.regulator_sealing_key,
            refund_hooks={
                "offline_payment": offline_repo.unbook,
                "voucher_payment": voucher_refunds.book,
                "voucher_payment:lock": voucher_refunds.lock,
            },
        )
        transaction(self.factory, self.ctx.bootstrap)
        # Wallets opened before the evidence index existed (op0010) join it once.
        transaction(self.factory, lambda s: identity_history.backfill_index(s, self.ctx))
        self.uow = UnitOfWork(self.factory)
        self.auth = SignedRequestAuth(self.resolve_key, audience=operator_audience(config.code))
        self.runner = JobRunner(self.factory, self.ctx, JOBS, gatherer=RtgsSettler, sweeps=SWEEPS)
        # Batched gross settlement: the runner's settler, which requests wait on.
        self.settler = cast(RtgsSettler, self.runner.rtgs)
        self.worker: OutboxWorker | None = None
        self._wallet_keys: dict[str, str] = {}
        # Single payments are micro-batched: concurrent requests share one transaction.
        self.payments = PaymentBatcher(
            lambda work: self.uow.run(None, work), self.ctx, threads=config.payment_threads
        )
        self.metrics = ServiceMetrics(
            service="operator",
            name=config.code,
            engine=self.engine,
            queue_depths=lambda: transaction(self.factory, repo.queue_depths),
            payments=True,
        )

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.certificate()  # best effort; retried on the next /v1/info otherwise
        if self.config.run_worker and self.worker is None:
            self.worker = self.new_worker()
            self.worker.start()

    def new_worker(self, **timing: float) -> OutboxWorker:
        """An outbox worker for this operator (not started): the runner, the vault's water
        marks and net settlement's clearing steps; `timing`: OutboxWorker's intervals."""
        return OutboxWorker(self.runner, water_marks=check_water_marks, clearing=netting, **timing)

    def stop(self) -> None:
        self.payments.stop()
        self.settler.stop()
        if self.worker is not None:
            self.worker.stop()
            self.worker.join(timeout=5)
            self.worker = None
        self.engine.dispose()

    async def pay(self, order: dict[str, Any], signature: str) -> dict[str, Any] | DomainError:
        """One signed payment order (validated by the route): its receipt, final as far as this
        request can take it, or its refusal (returned, not raised). Every single-payment route
        comes through here: the order joins a micro-batch (`operators.payments.microbatch`); a
        cross-operator payment under RTGS then waits for its settlement batch
        (`operators.settlement.rtgs`) before the answer."""
        result = await asyncio.wrap_future(self.payments.submit(order, signature))
        if isinstance(result, DomainError):
            return result
        if result["route"] == "cross" and result["status"] == "pending_settlement":
            if self.ctx.settlement_mode == "rtgs":
                return await self._await_settlement(result)
            self.wake_worker()
        return result

    async def _await_settlement(self, receipt: dict[str, Any]) -> dict[str, Any]:
        """Batched gross settlement (operators/settlement/rtgs.py): wake the settler and wait,
        without a thread, for this payment's batch to be settled and delivered; the receipt is then
        re-signed with the outcome the settler learnt (no database read). If the settlement
        cannot be made now (an outage), the answer stays `pending_settlement` and the outbox
        finishes the payment later."""
        settler = self.settler
        future = settler.wait_for(receipt["payment_id"])
        settler.kick()
        try:
            outcome = await asyncio.wait_for(asyncio.wrap_future(future), RTGS_WAIT_SECONDS)
        except TimeoutError:
            settler.forget(receipt["payment_id"], future)
            outcome = None
        if outcome is None:
            self.wake_worker()
            return receipt
        status, failure = outcome
        document = {k: v for k, v in receipt.items() if k not in ("receipt", "replayed")}
        document.update(status=status, failure=failure)
        return {
            **document,
            "receipt": sign_document(self.ctx.key, document),
            "replayed": receipt["replayed"],
        }

    def run_job_now(self, reference: str) -> None:
        """Best effort: run the outbox job named `reference` now (a disclosure's anchor at the
        central bank). If the database or the other party fails meanwhile, the job stays in the
        outbox and the worker runs it later (`JobRunner`)."""
        try:
            self.runner.run_reference(reference)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            log.warning("running %s now: database unavailable; left to the worker", reference)

    def wake_worker(self) -> None:
        if self.worker is not None:
            self.worker.wake.set()

    def certificate(self) -> dict[str, Any] | None:
        if self.ctx.certificate is None:
            try:
                entry = self.ctx.central_bank.operator(self.ctx.code)
            except Exception:
                return None
            if entry:
                self.ctx.certificate = {
                    "document": entry["certificate"],
                    "signature": entry["certificate_signature"],
                }
        return self.ctx.certificate

    # ------------------------------------------------------------ auth

    def resolve_key(self, key_id: str, body: bytes) -> ResolvedKey | None:
        if key_id == f"operator:{self.ctx.code}":
            return ResolvedKey("staff", self.ctx.code, self.ctx.key.public_key)
        if key_id.startswith("operator:"):
            code = key_id.split(":", 1)[1]
            entry = self.ctx.central_bank.operator(code)
            if entry is None or entry.get("status") != "active":
                # Maybe registered or reactivated since: refresh (rate-limited by the client).
                entry = self.ctx.central_bank.operator(code, refresh=True)
            if entry is None or entry.get("status") != "active":
                return None
            return ResolvedKey("operator", code, entry["public_key"])
        if key_id.startswith("wallet:"):
            wallet_id = key_id.split(":", 1)[1]
            public_key = self._wallet_keys.get(wallet_id)
            if public_key is None:
                with self.factory() as session:
                    public_key = wallet_repo.wallet_public_key(session, wallet_id)
                if public_key is None:
                    return None
                self._wallet_keys[wallet_id] = public_key
            return ResolvedKey("wallet", wallet_id, public_key)
        if key_id == "central-bank":  # the central bank's dashboard reads the disclosure log
            return ResolvedKey("central_bank", "central-bank", self.ctx.central_bank_public_key)
        if key_id == "regulator" and self.ctx.regulator_signing_key:
            return ResolvedKey("regulator", "regulator", self.ctx.regulator_signing_key)
        if key_id == "new-wallet":
            try:
                parsed = loads_unique(body or b"{}")  # a repeated key: 422
            except ValueError:
                return None
            public_key = parsed.get("public_key") if isinstance(parsed, dict) else None
            if not isinstance(public_key, str):
                return None
            return ResolvedKey("new-wallet", "", public_key)
        return None

    # ------------------------------------------------------------ exchange with replenishment

    def with_float(
        self, work: Callable[[Session], Any], *, principal: Principal | None = None
    ) -> Any:
        """Run a load; if the vault float is short, obtain issuance at once and retry."""
        for attempt in range(3):
            try:
                return self.uow.run(principal, work)
            except VaultShortfall as shortfall:
                if attempt == 2:
                    break
                self.replenish(max(shortfall.needed, self.ctx.water_marks.target))
        raise VaultFloatInsufficient("the central bank did not issue enough to cover this load")

    def ensure_float(self, needed: int) -> None:
        """Before loads in bulk: if the vault float cannot cover `needed`, obtain issuance of
        the shortfall plus the target float (refusals of the central bank propagate)."""
        with self.factory() as session:
            float_balance = repo.account_balance(session, self.ctx.account("vault_float"))
        if needed > float_balance:
            self.replenish(needed - float_balance + self.ctx.water_marks.target)

    def replenish(self, amount: int) -> None:
        """Request issuance of `amount` into the vault float and wait for it."""
        reference: str = transaction(
            self.factory, lambda s: vault.queue_issuance(s, amount, now=self.ctx.now())
        )
        self.runner.run_reference(reference)


async def get_state(request: Request) -> OperatorState:
    # async: FastAPI would run a plain function in its thread pool, one hop per request
    return request.app.state.operator  # type: ignore[no-any-return]
