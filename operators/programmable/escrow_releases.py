"""Releasing escrowed value to the payee: an ordinary payment of the payer.

A release of X (signed by the arbiter, or by the payer when there is none; before the
deadline; at most what remains) is two entries in one transaction: `escrow_unlock` (escrow
account -> payer wallet) and the payment (payer wallet -> payee, or -> `in_transit_out` for a
payee at another operator, queued with `queue_cross_operator` and settled like any payment).
The payment is a `payment` order of the payer (nonce `escrow:<escrow id>:<signer>:<nonce>`,
body the signed release), so it shows in the payer's history and its status at
GET /v1/payments/{id}; one the payee's operator returns, or the central bank refuses, is
refunded by the one refund rule (`operators.settlement.refunds`): to the payer's WALLET, not
back into the escrow (the release was decided; the escrow stays as it was). It is not counted
against the payer's limits again: the escrow was, when it was created.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cbdc.addresses import routing_code
from cbdc.errors import IdempotencyMismatch, InsufficientFunds
from operators.compliance import aml
from operators.context import OperatorContext
from operators.errors import UnknownWallet
from operators.models import Order, Wallet
from operators.payments.orders import check_signed_order, payment_receipt
from operators.programmable import escrow_repository as erepo
from operators.programmable.errors import AmountExceedsRemaining, NotTheArbiter
from operators.programmable.escrows import locked, remaining_of, require_open, view
from operators.programmable.payout import lock_payout_accounts, post_payout
from operators.rawsql import raw
from operators.settlement.queue import queue_cross_operator
from operators.wallets import limits
from operators.wallets import repository as wallet_repo


def release(
    session: Session,
    ctx: OperatorContext,
    *,
    escrow_id: str,
    order: dict[str, Any],
    signature: str,
) -> dict[str, Any]:
    """The escrow's view after the release, with the release's payment receipt (`payment`) and
    `replayed` (the same signed release sent again answers the first outcome)."""
    now = ctx.now()
    escrow = locked(session, escrow_id)
    by = order["by"]
    entitled = escrow["arbiter"] or escrow["payer"]
    if by != entitled:
        raise NotTheArbiter(
            "only the arbiter may release this escrow"
            if escrow["arbiter"]
            else "only the payer may release an escrow without an arbiter"
        )
    signer = wallet_repo.get_wallet(session, by)
    assert signer is not None  # the payer or the arbiter: wallets of this operator
    order_hash = check_signed_order(signer, order, signature, now=now)
    previous = erepo.find_event(session, escrow["id"], by, order["nonce"])
    if previous is not None:
        if previous["order_hash"] != order_hash:
            raise IdempotencyMismatch("this nonce was already used by a different order")
        payment = wallet_repo.get_order(session, previous["order_id"])
        assert payment is not None
        return {**view(ctx, escrow), "payment": payment_receipt(ctx, payment), "replayed": True}
    require_open(escrow, now)
    amount = order["amount"]
    remaining = remaining_of(escrow)
    if amount > remaining:
        raise AmountExceedsRemaining(
            f"the escrow holds {limits.fmt_money(ctx, remaining)}, "
            f"not {limits.fmt_money(ctx, amount)}",
            remaining=remaining,
        )
    payment = _pay(
        session, ctx, escrow, amount, order=order, signature=signature, order_hash=order_hash
    )
    erepo.settle(session, escrow["id"], released=amount, now=now)
    erepo.add_event(
        session,
        escrow_id=escrow["id"],
        kind="release",
        amount=amount,
        by_wallet=by,
        nonce=order["nonce"],
        body=order,
        signature=signature,
        order_hash=order_hash,
        order_id=payment.id,
        entry_id=payment.entry_id,
        created_at=now,
    )
    return {
        **view(ctx, locked(session, escrow["id"])),
        "payment": payment_receipt(ctx, payment),
        "replayed": False,
    }


def _pay(
    session: Session,
    ctx: OperatorContext,
    escrow: dict[str, Any],
    amount: int,
    *,
    order: dict[str, Any],
    signature: str,
    order_hash: str,
) -> Order:
    """Escrow -> payer -> payee (or in transit), the payment order written; its order."""
    now = ctx.now()
    payer = wallet_repo.get_wallet(session, escrow["payer"])
    assert payer is not None
    limits.require_active(payer, "payer wallet")
    payee_id: str = escrow["payee"]
    cross = routing_code(payee_id) != ctx.code
    payee = None if cross else wallet_repo.get_wallet(session, payee_id)
    if not cross and payee is None:
        raise UnknownWallet(f"no payee wallet {payee_id}")
    credit, balances = lock_payout_accounts(session, ctx, escrow["account_id"], payer, payee)
    if balances[escrow["account_id"]] < amount:  # the audit's invariant, checked again
        raise InsufficientFunds("the escrow account does not hold the escrow's remaining value")
    payment = post_payout(
        session,
        ctx,
        source_account=escrow["account_id"],
        payer=payer,
        payee=payee,
        payee_id=payee_id,
        credit=credit,
        balances=balances,
        amount=amount,
        unlock_kind="escrow_unlock",
        unlock_reference=str(escrow["id"]),
        nonce=f"escrow:{escrow['id']}:{order['by']}:{order['nonce']}",
        order=order,
        signature=signature,
        order_hash=order_hash,
        now=now,
    )
    if cross:
        queue_cross_operator(session, ctx, [(payment.id, payer.id, payee_id, amount)])
    _aml(session, ctx, payer, payee_id, amount, payee, now=now)
    return payment


def _aml(
    session: Session,
    ctx: OperatorContext,
    payer: Wallet,
    payee_id: str,
    amount: int,
    payee: Wallet | None,
    *,
    now: datetime,
) -> None:
    """The AML rules of a payment (`operators.compliance.aml`, as `pay_many` runs them): the
    release is the payer's payment to the payee, so locking value in an escrow first does not
    take a large (or structured, or fanned-out) payment out of monitoring."""
    checks = aml.payment_checks(ctx, [(payer, payee_id, amount, payee)], now=now)
    with raw(session, checks.query) as conn, conn.cursor() as cursor:
        cursor.execute(checks.query, checks.params)
        hits = cursor.fetchall()
    aml.raise_payment_alerts(session, checks, hits, now=now)
