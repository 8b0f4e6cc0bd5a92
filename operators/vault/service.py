"""The operator's vault: tokens obtained from the central bank, and the water marks that keep
the vault float between `low` and `high` by automatic issuance and redemption.

Calls to the central bank run outside database transactions and are made idempotent by the
outbox job's reference (sent as the Idempotency-Key): a crash between the central bank's answer
and our commit is repaired by simply running the job again.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.errors import IdempotencyMismatch
from cbdc.tokens import verify_document, verify_token
from operators import repository as repo
from operators.context import OperatorContext
from operators.errors import BadCentralBankDocument, TokensUnavailable
from operators.models import OutboxJob
from operators.vault import repository as vault_repo

log = logging.getLogger(__name__)


def check_water_marks(session: Session, ctx: OperatorContext, *, float_balance: int) -> None:
    """Queue an issuance below the low mark, a redemption above the high mark (one at a time)."""
    marks = ctx.water_marks
    if float_balance < marks.low and not repo.has_pending(session, "issuance"):
        repo.enqueue(
            session,
            now=ctx.now(),
            kind="issuance",
            reference=f"issue:{uuid.uuid4()}",
            payload={"amount": marks.target - float_balance},
        )
    elif float_balance > marks.high and not repo.has_pending(session, "redemption"):
        repo.enqueue(
            session,
            now=ctx.now(),
            kind="redemption",
            reference=f"redeem:{uuid.uuid4()}",
            payload={"amount": float_balance - marks.target},
        )


def queue_issuance(
    session: Session, amount: int, *, now: datetime, reference: str | None = None
) -> str:
    return _queue(session, "issuance", amount, reference or f"issue:{uuid.uuid4()}", now=now)


def _queue(session: Session, kind: str, amount: int, reference: str, *, now: datetime) -> str:
    """Enqueue once per reference; the same reference with another amount is a conflict."""
    existing = repo.job_by_reference(session, reference)
    if existing is not None:
        if existing.kind != kind or int(existing.payload.get("requested", -1)) != amount:
            raise IdempotencyMismatch("Idempotency-Key was used for a different request")
        return reference
    repo.enqueue(
        session,
        now=now,
        kind=kind,
        reference=reference,
        payload={"amount": amount, "requested": amount},
    )
    return reference


def queue_redemption(
    session: Session, amount: int, *, now: datetime, reference: str | None = None
) -> str:
    return _queue(session, "redemption", amount, reference or f"redeem:{uuid.uuid4()}", now=now)


def job_outcome(session: Session, reference: str) -> dict[str, Any]:
    job = repo.job_by_reference(session, reference)
    if job is None:
        return {"status": "unknown"}
    return {"status": job.status, "amount": job.payload.get("amount"), "error": job.last_error}


def verified_tokens(ctx: OperatorContext, tokens: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for token in tokens:
        if (
            not verify_token(ctx.central_bank_public_key, token)
            or token["currency"] != ctx.currency
        ):
            raise BadCentralBankDocument(f"token {token.get('serial')} does not verify")
    return tokens


def apply_issuance(
    session: Session, ctx: OperatorContext, *, job: OutboxJob, response: dict[str, Any]
) -> None:
    """Store issued tokens and move their value into the vault float (once per job)."""
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return
    if not verify_document(ctx.central_bank_public_key, response["receipt"]):
        raise BadCentralBankDocument("issuance receipt does not verify")
    tokens = verified_tokens(ctx, response["tokens"])
    amount = sum(int(t["amount"]) for t in tokens)
    if amount != int(job.payload["amount"]):
        raise BadCentralBankDocument("issued tokens do not add up to the requested amount")
    vault_repo.add_vault_tokens(session, tokens, via=f"issuance:{response['operation_id']}")
    ledger.lock_accounts(session, [ctx.account("tokens_held"), ctx.account("vault_float")])
    ledger.post(
        session,
        at=ctx.now(),
        kind="issuance",
        reference=response["operation_id"],
        legs=[(ctx.account("tokens_held"), -amount), (ctx.account("vault_float"), amount)],
    )
    repo.finish_job(session, job.id, now=ctx.now())


def reserve_for(session: Session, *, amount: int, reference: str) -> list[str]:
    """Reserve vault tokens worth at least `amount` for `reference` (idempotent).

    Best fit first: the smallest single token that covers the amount (so concurrent
    settlements do not all queue behind the few largest tokens); otherwise the largest tokens
    until the amount is covered."""
    already = vault_repo.reserved_tokens(session, reference)
    if already:
        return [str(t.serial) for t in already]
    single = vault_repo.smallest_covering_token(session, amount)
    if single is not None:
        vault_repo.reserve_tokens(session, [single.serial], reference)
        return [str(single.serial)]
    chosen, total = [], 0
    for token in vault_repo.held_tokens_for_update(session):
        chosen.append(token.serial)
        total += token.amount
        if total >= amount:
            break
    if total < amount:
        raise TokensUnavailable(f"only {total} of {amount} in unreserved tokens")
    vault_repo.reserve_tokens(session, chosen, reference)
    return [str(s) for s in chosen]


def prepare_redemption(
    session: Session, ctx: OperatorContext, *, job: OutboxJob
) -> tuple[list[str], int]:
    """Move the amount from the float to `redemption_pending` and reserve tokens (once).
    Returns the reserved serials and the amount to redeem (nothing when there is nothing)."""
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return [], 0
    reference = job.reference
    if locked.payload.get("prepared"):
        serials = [str(t.serial) for t in vault_repo.reserved_tokens(session, reference)]
        return serials, int(locked.payload["amount"])
    balances = ledger.lock_accounts(
        session, [ctx.account("vault_float"), ctx.account("redemption_pending")]
    )
    amount = min(int(job.payload["amount"]), balances[ctx.account("vault_float")])
    if amount <= 0:
        repo.finish_job(session, job.id, now=ctx.now(), error="nothing to redeem")
        return [], 0
    serials = reserve_for(session, amount=amount, reference=reference)
    ledger.post(
        session,
        at=ctx.now(),
        kind="redemption_out",
        reference=reference,
        legs=[(ctx.account("vault_float"), -amount), (ctx.account("redemption_pending"), amount)],
    )
    locked.payload = {**locked.payload, "amount": amount, "prepared": True}
    session.flush()
    return serials, amount


def apply_redemption(
    session: Session, ctx: OperatorContext, *, job: OutboxJob, response: dict[str, Any]
) -> None:
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return
    receipt = response["receipt"]
    if not verify_document(ctx.central_bank_public_key, receipt):
        raise BadCentralBankDocument("redemption receipt does not verify")
    amount = int(locked.payload["amount"])
    change = verified_tokens(ctx, response.get("change", []))
    vault_repo.tokens_gone(session, receipt["document"]["inputs"], ctx.now())
    vault_repo.add_vault_tokens(
        session, change, via=f"redemption-change:{response['operation_id']}"
    )
    ledger.lock_accounts(session, [ctx.account("tokens_held"), ctx.account("redemption_pending")])
    ledger.post(
        session,
        at=ctx.now(),
        kind="redemption",
        reference=response["operation_id"],
        legs=[(ctx.account("redemption_pending"), -amount), (ctx.account("tokens_held"), amount)],
    )
    repo.finish_job(session, job.id, now=ctx.now())


def cancel_redemption(
    session: Session, ctx: OperatorContext, *, job: OutboxJob, reason: str
) -> None:
    """The central bank refused: put the amount back in the float and release the tokens."""
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return
    if locked.payload.get("prepared"):
        amount = int(locked.payload["amount"])
        ledger.lock_accounts(
            session, [ctx.account("vault_float"), ctx.account("redemption_pending")]
        )
        ledger.post(
            session,
            at=ctx.now(),
            kind="redemption_cancelled",
            reference=job.reference,
            legs=[
                (ctx.account("redemption_pending"), -amount),
                (ctx.account("vault_float"), amount),
            ],
        )
        vault_repo.release_tokens(session, job.reference)
    repo.finish_job(session, job.id, now=ctx.now(), status="failed", error=reason)


def vault_position(session: Session, ctx: OperatorContext) -> dict[str, Any]:
    balances = {
        code: repo.account_balance(session, account) for code, account in ctx.accounts.items()
    }
    return {
        "accounts": balances,
        "tokens": vault_repo.vault_summary(session),
        "holdings": holdings(session),
    }


def holdings(session: Session) -> dict[str, int]:
    """Where the operator's digital currency is held (minor units), summed by account kind in one
    aggregate: the parts add up to the circulation it obtained from the central bank
    (-tokens_held). Only the operator knows this split; the central bank sees the total."""
    kinds = ledger.balances_by_kind(session)
    return {
        "wallets": kinds.get("wallet", 0),
        "escrows": kinds.get("escrow", 0),
        "vouchers": kinds.get("voucher", 0),
        "offline_purses": kinds.get("offline_purse", 0),
        "vault_float": kinds.get("vault_float", 0),
        "in_transit": kinds.get("in_transit", 0),
    }
