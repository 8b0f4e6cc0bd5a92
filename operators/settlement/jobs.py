"""Outbox jobs of settlement: a single RTGS settlement and its delivery, batched gross
settlement (gathered, settled and delivered by the settler, `rtgs_settler.RtgsSettler`), and
the steps of deferred net settlement (submit, pay, apply)."""

from __future__ import annotations

import logging
from typing import cast

from cbdc.http import RemoteError, RemoteUnavailable
from operators.errors import TokensUnavailable
from operators.jobs import JobHandler, JobRunner
from operators.models import OutboxJob
from operators.settlement import delivery as settlement
from operators.settlement import net_apply, net_obligations, net_submission
from operators.settlement.delivery import VAULT_DISAGREES
from operators.settlement.rtgs_settler import RtgsSettler

log = logging.getLogger(__name__)
# Refusals of a clearing submission that must not refund the payers: the payments may already
# be with the clearing house (a bug to look at, not a refusal of the payments).
SUBMISSION_KEPT = {"idempotency_key_reused", "duplicate_clearing_item"}


def _settler(runner: JobRunner) -> RtgsSettler:
    """The runner's batched gross settler (composed in `operators.state`)."""
    return cast(RtgsSettler, runner.rtgs)


def run_settle(runner: JobRunner, job: OutboxJob) -> None:
    serials = runner.tx(lambda s: settlement.prepare_settlement(s, job=job))
    try:
        response = runner.ctx.central_bank.settle(
            payee_operator=job.payload["payee_operator"],
            amount=int(job.payload["amount"]),
            serials=serials,
            reference=job.reference,
        )
    except RemoteError as exc:
        code = exc.code
        if code in VAULT_DISAGREES:
            log.error("settlement %s: vault disagrees with registry: %s", job.reference, exc)
            runner.fail(job, str(exc))
        else:
            runner.tx(lambda s: settlement.refund_settlement(s, runner.ctx, job=job, reason=code))
        return
    runner.tx(lambda s: settlement.apply_settlement(s, runner.ctx, job=job, response=response))
    # The deliver job (same reference) runs next: inline in run_reference, or by the worker.


def run_deliver(runner: JobRunner, job: OutboxJob) -> None:
    peer = runner.ctx.peers.client(job.payload["payee_operator"])
    if peer is None:
        raise RemoteUnavailable(f"no address for operator {job.payload['payee_operator']}")
    try:
        answer = peer.request("POST", "/v1/interop/settlements", job.payload["body"])
    except RemoteError as exc:
        if exc.code in ("settlement_rejected", "validation_error"):
            log.error("delivery %s refused: %s", job.reference, exc)
            runner.fail(job, str(exc))
        else:  # e.g. 401 while the peer's directory is stale: not about the settlement
            runner.later(job, min(5.0, 0.25 * 2 ** min(job.attempts, 7)), str(exc))
        return
    runner.tx(
        lambda s: settlement.mark_delivered(
            s, job=job, outcome=answer["outcome"], now=runner.ctx.now()
        )
    )


def run_rtgs_batch(runner: JobRunner, job: OutboxJob) -> None:
    """Payments queued for batched settlement: gathered with all others ready (rtgs.py)."""
    _settler(runner).settle_ready(include=[job.id])


def run_rtgs_settle(runner: JobRunner, job: OutboxJob) -> None:
    _settler(runner).settle_job(job)


def run_rtgs_deliver(runner: JobRunner, job: OutboxJob) -> None:
    _settler(runner).deliver_job(job)


# ------------------------------------------------------------ deferred net settlement


def run_net_submit(runner: JobRunner, job: OutboxJob) -> None:
    body = runner.tx(lambda s: net_submission.submission_body(s, job=job))
    if body is None:
        return
    try:
        answer = runner.ctx.central_bank.submit_for_clearing(body)
    except RemoteError as exc:
        code = exc.code
        if code in SUBMISSION_KEPT:
            log.error("clearing submission %s: %s", job.reference, exc)
            runner.fail(job, str(exc))
        else:
            runner.tx(
                lambda s: net_submission.refund_submission(s, runner.ctx, job=job, reason=code)
            )
        return
    runner.tx(
        lambda s: net_submission.submission_accepted(
            s, job=job, body=body, answer=answer, now=runner.ctx.now()
        )
    )


def run_net_pay(runner: JobRunner, job: OutboxJob) -> None:
    try:
        serials = runner.tx(
            lambda s: net_obligations.prepare_payment(s, job=job, now=runner.ctx.now())
        )
    except TokensUnavailable:
        # A liquidity shortfall: obtain issuance now (recorded), then try once more.
        issuance = runner.tx(lambda s: net_obligations.record_shortfall(s, runner.ctx, job=job))
        if issuance is not None:
            runner.run_reference(issuance, patience=0)
        serials = runner.tx(
            lambda s: net_obligations.prepare_payment(s, job=job, now=runner.ctx.now())
        )
    if serials is None:
        return
    oid = job.payload["obligation_id"]
    try:
        answer = runner.ctx.central_bank.pay_obligation(oid, serials)
    except RemoteError as exc:
        if exc.code in VAULT_DISAGREES:
            log.error("net settlement %s: vault disagrees with registry: %s", oid, exc)
            runner.fail(job, str(exc))
        elif exc.code == "obligation_settled":  # paid under another key: nothing to pay
            error = str(exc)
            runner.tx(
                lambda s: net_obligations.release_payment(
                    s, job=job, reason=error, now=runner.ctx.now()
                )
            )
        else:  # an obligation stands: keep trying (e.g. while we are suspended)
            runner.later(job, min(30.0, 0.5 * 2 ** min(job.attempts, 6)), str(exc))
        return
    runner.tx(lambda s: net_obligations.payment_made(s, runner.ctx, job=job, answer=answer))
    # the `net_apply` job (same reference) runs next: in run_reference, or by the worker


def run_net_apply(runner: JobRunner, job: OutboxJob) -> None:
    oid = job.payload["obligation_id"]
    if not runner.tx(lambda s: net_apply.applied(s, oid)):
        detail, items = net_apply.fetch_settled_pair(runner.ctx, oid)
        if detail["status"] != "settled":
            runner.later(job, 1.0, "waiting for the debtor to pay")
            return
        runner.tx(
            lambda s: net_apply.apply_pair(s, runner.ctx, job=job, detail=detail, items=items)
        )
    returned = runner.tx(lambda s: net_apply.returned_references(s, oid))
    try:
        runner.ctx.central_bank.acknowledge_obligation(oid, returned)
    except RemoteError as exc:
        log.error("net settlement %s: acknowledgement refused: %s", oid, exc)
        runner.fail(job, str(exc))
        return
    runner.finish(job)


JOBS: dict[str, JobHandler] = {
    "settle": run_settle,
    "deliver": run_deliver,
    "rtgs_batch": run_rtgs_batch,
    "rtgs_settle": run_rtgs_settle,
    "rtgs_deliver": run_rtgs_deliver,
    "net_submit": run_net_submit,
    "net_pay": run_net_pay,
    "net_apply": run_net_apply,
}
