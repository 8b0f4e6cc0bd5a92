"""Settlement across operators, one at a time, driven by the outbox: the path of returns
(and of anyone settling a single payment). Cross-operator payments themselves settle in batches
(`operators.settlement.rtgs`: the same steps, one central bank call and one delivery per batch).

Payer's operator A, payee's operator B, central bank CB:

  1. A, in the payment's transaction: payer wallet -X, in_transit_out +X; outbox `settle`.
  2. `settle` job: reserve vault tokens worth >= X; ask CB to settle (idempotent on the
     payment); CB spends the inputs, mints X to B and the change to A, signs a receipt.
  3. A applies the receipt: inputs gone, change kept, in_transit_out -X, tokens_held +X;
     outbox `deliver`.
  4. `deliver` job: A sends B the receipt and B's new tokens. B verifies the CB's signatures,
     and credits the payee (tokens_held -X, wallet +X), deduplicated by the settlement id.
     If the payee cannot take the money (unknown, frozen, over its cap) B holds it in
     `returns_pending` and sends it back the same way (kind "return"); A refunds the payer.

Each step is idempotent, so a crash or an outage at any point delays money but never loses or
duplicates it. The background worker runs the jobs and retries them.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.policy import WalletClass
from cbdc.tokens import verify_document
from operators import repository as repo
from operators.compliance import aml
from operators.context import OperatorContext
from operators.errors import BadCentralBankDocument, SettlementNotReady, SettlementRejected
from operators.models import InboundSettlement, Order, OutboxJob
from operators.settlement import refunds
from operators.settlement import repository as settlement_repo
from operators.vault import repository as vault_repo
from operators.vault.service import reserve_for, verified_tokens
from operators.wallets import repository as wallet_repo

log = logging.getLogger(__name__)
# Refusals that mean our vault disagrees with the registration centre: never auto-refund.
VAULT_DISAGREES = {"double_spend", "token_not_owned", "unknown_token"}


def prepare_settlement(session: Session, *, job: OutboxJob) -> list[str]:
    return reserve_for(session, amount=int(job.payload["amount"]), reference=job.reference)


def apply_settlement(
    session: Session, ctx: OperatorContext, *, job: OutboxJob, response: dict[str, Any]
) -> None:
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return
    payload = locked.payload
    receipt = response["receipt"]
    document = receipt.get("document", {})
    amount = int(payload["amount"])
    if not verify_document(ctx.central_bank_public_key, receipt) or (
        document.get("amount") != amount
        or document.get("payee_operator") != payload["payee_operator"]
        or document.get("payer_operator") != ctx.code
    ):
        raise BadCentralBankDocument("settlement receipt does not verify or does not match")
    change = verified_tokens(ctx, response.get("change", []))
    vault_repo.tokens_gone(session, document["inputs"], ctx.now())
    vault_repo.add_vault_tokens(
        session, change, via=f"settlement-change:{document['settlement_id']}"
    )
    source = ctx.account(payload["source"])
    ledger.lock_accounts(session, [source, ctx.account("tokens_held")])
    ledger.post(
        session,
        at=ctx.now(),
        kind="settlement_out",
        reference=document["settlement_id"],
        legs=[(source, -amount), (ctx.account("tokens_held"), amount)],
    )
    if payload.get("order_id"):
        wallet_repo.set_order_status(
            session, uuid.UUID(payload["order_id"]), "settled", now=ctx.now()
        )
    repo.enqueue(
        session,
        now=ctx.now(),
        kind="deliver",
        reference=job.reference,
        payload={
            "payee_operator": payload["payee_operator"],
            "order_id": payload.get("order_id"),
            "body": {
                **payload["delivery"],
                "receipt": receipt,
                "payee_tokens": response["payee_tokens"],
            },
        },
    )
    repo.finish_job(session, job.id, now=ctx.now())


def refund_settlement(
    session: Session, ctx: OperatorContext, *, job: OutboxJob, reason: str
) -> None:
    """The central bank refused the settlement for good: give the payer its money back."""
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return
    vault_repo.release_tokens(session, job.reference)
    payload = locked.payload
    order_id = payload.get("order_id")
    if not order_id:
        repo.finish_job(session, job.id, now=ctx.now(), status="failed", error=reason)
        return
    order = wallet_repo.get_order(session, uuid.UUID(order_id), lock=True)
    assert order is not None
    wallet = wallet_repo.get_wallet(session, order.wallet_id)
    assert wallet is not None
    amount = int(payload["amount"])
    source = ctx.account(payload["source"])
    ledger.lock_accounts(
        session, [source, wallet.account_id, *refunds.extra_accounts(session, ctx, [order])]
    )
    ledger.post(
        session,
        at=ctx.now(),
        kind="payment_refund",
        reference=order_id,
        legs=refunds.refund_legs(session, ctx, order, source, wallet.account_id, amount),
    )
    wallet_repo.set_order_status(session, order.id, "failed", failure=reason, now=ctx.now())
    from operators.wallets.limits import unspend

    unspend(session, ctx, order=order)
    repo.finish_job(session, job.id, now=ctx.now(), status="failed", error=reason)


def mark_delivered(session: Session, *, job: OutboxJob, outcome: str, now: datetime) -> None:
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return
    order_id = locked.payload.get("order_id")
    if order_id and outcome == "credited":
        order = wallet_repo.get_order(session, uuid.UUID(order_id), lock=True)
        if order is not None and order.status == "settled":
            wallet_repo.set_order_status(session, order.id, "delivered", now=now)
    repo.finish_job(session, job.id, now=now)


# ------------------------------------------------------------------ the payee's side


def check_delivery(
    ctx: OperatorContext, payer_operator: str, body: dict[str, Any]
) -> tuple[str, int]:
    """What the payee's operator checks of a delivered settlement before crediting anything:
    the receipt is the central bank's, settles to this operator from `payer_operator`, and the
    tokens verify and are exactly the ones it names. (settlement id, amount); else
    `SettlementRejected`. The single path (`receive`) and batches (`rtgs_inbound`) share it."""
    receipt = body.get("receipt")
    document = receipt.get("document", {}) if isinstance(receipt, dict) else {}
    if not isinstance(receipt, dict) or not verify_document(ctx.central_bank_public_key, receipt):
        raise SettlementRejected("the receipt is not signed by the central bank")
    if document.get("kind") != "settlement" or document.get("payee_operator") != ctx.code:
        raise SettlementRejected("the receipt does not settle to this operator")
    if document.get("payer_operator") != payer_operator:
        raise SettlementRejected("the receipt was settled by another operator")
    amount = int(document["amount"])
    tokens = body["payee_tokens"]
    try:
        verified_tokens(ctx, tokens)
    except BadCentralBankDocument as exc:
        raise SettlementRejected(str(exc)) from None
    if (
        sorted(t["serial"] for t in tokens) != sorted(document.get("payee_tokens", []))
        or sum(int(t["amount"]) for t in tokens) != amount
    ):
        raise SettlementRejected("the tokens are not the ones the receipt names")
    return str(document["settlement_id"]), amount


def receive(
    session: Session, ctx: OperatorContext, *, payer_operator: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Accept a settlement another operator delivers: credit the payee, or hold and return."""
    settlement_id, amount = check_delivery(ctx, payer_operator, body)
    receipt = body["receipt"]
    tokens = body["payee_tokens"]
    settlement_repo.lock_inbound_key(session, settlement_id)
    existing = settlement_repo.get_inbound(session, uuid.UUID(settlement_id))
    if existing is not None:
        return {"settlement_id": settlement_id, "outcome": existing.outcome, "replayed": True}

    vault_repo.add_vault_tokens(session, tokens, via=f"settlement:{settlement_id}")
    kind = body["kind"]
    sweep = 0
    returned = None
    if kind == "return":
        outcome, credit, returned = _refund_target(
            session, body["reference"], returned_by=payer_operator, amount=amount
        )
        reason = body.get("reason") or "returned by payee's operator"
    else:
        outcome, credit, reason, sweep = _payee_target(session, ctx, body["payee_wallet"], amount)
    target = credit if credit is not None else ctx.account("returns_pending")
    held = ctx.account("tokens_held")
    extra = refunds.extra_accounts(session, ctx, [returned] if returned is not None else [])
    ledger.lock_accounts(session, [held, target, *extra])
    legs = [(held, -amount), (target, amount)]
    if returned is not None:
        legs = refunds.refund_legs(session, ctx, returned, held, target, amount)
    entry = ledger.post(
        session,
        at=ctx.now(),
        kind="payment_returned" if kind == "return" else "settlement_in",
        reference=settlement_id,
        legs=legs,
    )
    settlement_repo.add_inbound(
        session,
        InboundSettlement(
            settlement_id=uuid.UUID(settlement_id),
            payer_operator=payer_operator,
            reference=body["reference"],
            kind=kind,
            payee_wallet=body["payee_wallet"],
            payer_alias=body.get("payer_alias"),
            amount=amount,
            outcome=outcome,
            receipt=receipt,
            entry_id=entry,
            created_at=ctx.now(),
        ),
    )
    if sweep:
        from operators.wallets.service import sweep_wallet_excess

        sweep_wallet_excess(
            session, ctx, wallet_id=body["payee_wallet"], amount=sweep, reference=settlement_id
        )
    if outcome == "credited":
        aml.on_receipts(session, ctx, {body["payee_wallet"]: amount})
    if kind == "return" and outcome == "refunded":
        wallet_repo.set_order_status(
            session, uuid.UUID(body["reference"]), "returned", failure=reason, now=ctx.now()
        )
        original = wallet_repo.get_order(session, uuid.UUID(body["reference"]))
        if original is not None:
            from operators.wallets.limits import unspend

            unspend(session, ctx, order=original)
    if outcome == "returning":
        queue_return(session, payer_operator, settlement_id, amount, body, reason, now=ctx.now())
    return {"settlement_id": settlement_id, "outcome": outcome, "reason": reason, "replayed": False}


def queue_return(
    session: Session,
    payer_operator: str,
    settlement_id: str,
    amount: int,
    body: dict[str, Any],
    reason: str | None,
    *,
    now: datetime,
) -> None:
    """Send a delivered payment the payee cannot take back to its payer's operator, by the
    single settlement path (a `settle` job from `returns_pending`, delivered as kind "return")."""
    repo.enqueue(
        session,
        now=now,
        kind="settle",
        reference=f"return:{settlement_id}",
        payload={
            "source": "returns_pending",
            "payee_operator": payer_operator,
            "amount": amount,
            "order_id": None,
            "delivery": {
                "kind": "return",
                "reference": body["reference"],
                "payee_wallet": body["payee_wallet"],
                "payer_alias": None,
                "reason": reason,
            },
        },
    )


def _payee_target(
    session: Session, ctx: OperatorContext, wallet_id: str, amount: int
) -> tuple[str, int | None, str | None, int]:
    """(outcome, account to credit, reason, amount to sweep past the cap to the deposit)."""
    if not is_valid_wallet_id(wallet_id) or routing_code(wallet_id) != ctx.code:
        return "returning", None, "invalid_wallet_id", 0
    wallet = wallet_repo.get_wallet(session, wallet_id)
    if wallet is None:
        return "returning", None, "unknown_wallet", 0
    balance = ledger.lock_accounts(session, [wallet.account_id])[wallet.account_id]
    session.refresh(wallet)  # class (hence cap) and status as of the lock
    return credit_verdict(
        ctx,
        account_id=wallet.account_id,
        wallet_class=wallet.wallet_class,
        status=wallet.status,
        balance=balance,
        amount=amount,
    )


def credit_verdict(
    ctx: OperatorContext,
    *,
    account_id: int,
    wallet_class: int,
    status: str,
    balance: int,
    amount: int,
) -> tuple[str, int | None, str | None, int]:
    """Whether an inbound payment may be credited to a wallet (as of its lock), for RTGS
    deliveries and net settlement alike: (outcome, account to credit, reason, amount to sweep
    past the balance cap to the holder's deposit)."""
    if status != "active":
        return "returning", None, "wallet_not_active", 0
    cap = ctx.policy.limits(WalletClass(wallet_class)).balance_cap
    if cap is not None and balance + amount > cap:
        if ctx.policy.overflow != "sweep":
            return "returning", None, "payee_balance_cap_exceeded", 0
        return "credited", account_id, None, balance + amount - max(cap, balance)
    return "credited", account_id, None, 0


def _refund_target(
    session: Session, reference: str, *, returned_by: str, amount: int
) -> tuple[str, int | None, Order]:
    """A return of one of our payments: refund its payer (even over a cap: it is a refund).
    Only a settled payment to the returning operator, for its full amount, and only once."""
    try:
        order = wallet_repo.get_order(session, uuid.UUID(reference), lock=True)
    except ValueError:
        order = None
    if (
        order is None
        or order.kind not in ("payment", refunds.OFFLINE)
        or routing_code(order.counterparty or "") != returned_by
        or order.amount != amount
    ):
        raise SettlementRejected(f"no outbound payment {reference} to {returned_by} to return")
    if order.status == "pending_settlement" and _in_clearing(session, order.id):
        # Net settlement: the payee's operator applied the pair before we did; we will.
        raise SettlementNotReady(f"payment {reference} is still being cleared here")
    if order.status not in ("settled", "delivered"):
        raise SettlementRejected(f"payment {reference} is {order.status}: nothing to return")
    wallet = wallet_repo.get_wallet(session, order.wallet_id)
    assert wallet is not None
    return "refunded", wallet.account_id, order


def _in_clearing(session: Session, order_id: uuid.UUID) -> bool:
    return (
        session.execute(
            text("SELECT 1 FROM net_items WHERE order_id = :o AND status = 'submitted'"),
            {"o": order_id},
        ).first()
        is not None
    )
