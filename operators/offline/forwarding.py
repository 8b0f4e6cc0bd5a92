"""Claims between operators: payments our devices received from another operator's devices
are forwarded to that operator (the only one that can adjudicate them: it sees all its device's
transfers), which settles them to our payee's wallet through the central bank.

    payee's operator B                          payer's operator A
    sync stores claims + `offline_forward` job
    job: POST /v1/interop/offline/claims  --->  `accept_claims`: adjudicated as if the payer
                                                synced them; settled to the payee wallet at B
    stores each answer on its claim       <---  {"results": [{"hash", "outcome", "order_id"}]}
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cbdc import offline as kernel
from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.http import RemoteError
from operators.context import OperatorContext
from operators.jobs import JobHandler, JobRunner
from operators.models import OutboxJob
from operators.offline import repository as offline_repo
from operators.offline.adjudication import adjudicate_many, refused
from operators.offline.sync import FORWARD_KIND

# The payer's operator's outcome -> the claim's status here.
STATUS = {
    "settled": "accepted",
    "pending_settlement": "accepted",
    "returned": "accepted",
    "double_spend": "accepted",
    "duplicate": "duplicate",
    "refused": "refused",
}


def accept_claims(
    session: Session, ctx: OperatorContext, *, caller: str, claims: list[Any]
) -> dict[str, Any]:
    """At the payer's operator: claims the payee's operator `caller` forwards. Each must be a
    payment by one of our devices, made out to one of `caller`'s devices and wallets, with the
    chain to our certificate; it is then adjudicated exactly like one our device synced."""
    results: list[dict[str, Any] | None] = [None] * len(claims)
    valid: list[dict[str, Any]] = []
    slots: list[int] = []
    for i, payment in enumerate(claims):
        doc = payment.get("transfer") if isinstance(payment, dict) else None
        try:
            if not isinstance(doc, dict):
                raise kernel.OfflineRefusal(kernel.MALFORMED, "a claim is a payment")
            kernel.verify_device_chain(
                ctx.central_bank_public_key,
                payment.get("operator_certificate"),  # type: ignore[union-attr]
                payment.get("certificate"),  # type: ignore[union-attr]
            )
            payer, payee = str(doc.get("payer", "")), str(doc.get("payee", ""))
            wallet = str(doc.get("payee_wallet", ""))
            if kernel.operator_of(payer) != ctx.code:
                raise kernel.OfflineRefusal(kernel.BAD_CHAIN, "the payer is not our device")
            if (
                not kernel.is_device_id(payee)
                or kernel.operator_of(payee) != caller
                or not is_valid_wallet_id(wallet)
                or routing_code(wallet) != caller
            ):
                raise kernel.OfflineRefusal(
                    kernel.WRONG_PAYEE, f"the payee is not a device and wallet of {caller}"
                )
        except (kernel.OfflineRefusal, KeyError, TypeError, AttributeError) as exc:
            code = exc.code if isinstance(exc, kernel.OfflineRefusal) else kernel.BAD_CHAIN
            results[i] = refused(code, str(exc), doc)
            continue
        valid.append(payment)
        slots.append(i)
    for i, result in zip(
        slots, adjudicate_many(session, ctx, valid, source=f"claim:{caller}"), strict=True
    ):
        results[i] = result
    return {"results": [_line(r) for r in results if r is not None]}


def _line(result: dict[str, Any]) -> dict[str, Any]:
    line = {
        "payer": result.get("payer"),
        "counter": result.get("counter"),
        "hash": result.get("hash"),
        "outcome": result["outcome"],
        "order_id": result.get("order_id"),
    }
    if result.get("code"):
        line["code"] = result["code"]
    return line


def run_forward(runner: JobRunner, job: OutboxJob) -> None:
    """Forward the claims of one sync to the payer's operator and keep its answers. Safe to
    run again: the other side answers `duplicate` for what it already adjudicated."""
    peer = str(job.payload["peer"])
    claims = runner.tx(lambda s: offline_repo.forwarding_claims(s, job.payload["keys"]))
    if not claims:
        runner.finish(job)
        return
    try:
        answer = runner.ctx.peers.offline_claims(peer, [dict(c.payment) for c in claims])
    except RemoteError as exc:
        if exc.status in (401, 403, 429):  # e.g. the peer suspended for a while: owed still
            runner.later(job, min(60.0, 0.5 * 2 ** min(job.attempts, 7)), str(exc))
            return
        runner.fail(job, str(exc))
        return
    results = {str(r.get("hash")): r for r in answer.get("results", []) if isinstance(r, dict)}

    def store(session: Session) -> None:
        now = runner.ctx.now()
        for claim in claims:
            result = results.get(claim.transfer_hash)
            if result is None:
                continue
            status = STATUS.get(str(result.get("outcome")), "refused")
            offline_repo.answer_claim(
                session, transfer_hash=claim.transfer_hash, status=status, answer=result, now=now
            )

    runner.tx(store)
    runner.finish(job)


JOBS: dict[str, JobHandler] = {FORWARD_KIND: run_forward}
