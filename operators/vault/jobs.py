"""Outbox jobs of the vault: issuance and redemption at the central bank, and the water-mark
check the worker runs (`operators.jobs`)."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.http import RemoteError
from operators.jobs import JobHandler, JobRunner
from operators.models import OutboxJob
from operators.vault import service as vault

log = logging.getLogger(__name__)


def run_issuance(runner: JobRunner, job: OutboxJob) -> None:
    try:
        response = runner.ctx.central_bank.issue(
            amount=int(job.payload["amount"]), idempotency_key=job.reference
        )
    except RemoteError as exc:
        log.warning("issuance refused: %s", exc)
        runner.fail(job, str(exc))
        return
    runner.tx(lambda s: vault.apply_issuance(s, runner.ctx, job=job, response=response))


def run_redemption(runner: JobRunner, job: OutboxJob) -> None:
    serials, amount = runner.tx(lambda s: vault.prepare_redemption(s, runner.ctx, job=job))
    if not serials:
        return
    try:
        response = runner.ctx.central_bank.redeem(
            serials=serials, amount=amount, idempotency_key=job.reference
        )
    except RemoteError as exc:
        code = exc.code
        runner.tx(lambda s: vault.cancel_redemption(s, runner.ctx, job=job, reason=code))
        return
    runner.tx(lambda s: vault.apply_redemption(s, runner.ctx, job=job, response=response))


def check_water_marks(runner: JobRunner) -> None:
    """Keep the vault float between its water marks: queue issuance below the low mark,
    redemption above the high one (`vault.check_water_marks`)."""
    ctx = runner.ctx

    def work(s: Session) -> None:
        account = ctx.account("vault_float")
        balance = ledger.lock_accounts(s, [account])[account]
        vault.check_water_marks(s, ctx, float_balance=balance)

    runner.tx(work)


JOBS: dict[str, JobHandler] = {"issuance": run_issuance, "redemption": run_redemption}
