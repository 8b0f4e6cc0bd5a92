"""Paying out of a locked (escrow) or earmarked (voucher) account through the payer's wallet.

Shared by escrow releases and voucher payments: the accounts locked (with the payee's deposit
account when the overflow policy sweeps), then two entries (`<unlock kind>`: source -> payer
wallet; the payment: payer wallet -> payee, or -> `in_transit_out` for a payee at another
operator), the payee's cap overflow swept down the waterfall, and the payer's `payment` order.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.ledger import Leg
from operators.context import OperatorContext
from operators.models import Customer, Order, Wallet
from operators.wallets import limits
from operators.wallets import repository as wallet_repo


def lock_payout_accounts(
    session: Session,
    ctx: OperatorContext,
    source_account: int,
    payer: Wallet,
    payee: Wallet | None,
) -> tuple[int, dict[int, int]]:
    """The account credited by the payment (the payee's, or `in_transit_out`) and the balances
    of the accounts the payout touches, locked."""
    sweeping = ctx.policy.overflow == "sweep"
    credit = ctx.account("in_transit_out") if payee is None else payee.account_id
    wanted = [source_account, payer.account_id, credit]
    if sweeping and payee is not None:
        wanted += [ctx.account("vault_float"), ctx.account("deposits_contra")]
        wanted.append(payee_deposit(session, payee.customer_id))
    return credit, ledger.lock_accounts(session, wanted)


def post_payout(
    session: Session,
    ctx: OperatorContext,
    *,
    source_account: int,
    payer: Wallet,
    payee: Wallet | None,
    payee_id: str,
    credit: int,
    balances: dict[int, int],
    amount: int,
    unlock_kind: str,
    unlock_reference: str,
    nonce: str,
    order: dict[str, Any],
    signature: str,
    order_hash: str,
    now: datetime,
) -> Order:
    """Source -> payer -> payee (or in transit), the overflow swept; the payment order written."""
    cross = payee is None
    overflow = 0
    if payee is not None:
        limits.require_active(payee, "payee wallet")
        overflow = limits.cap_overflow(ctx, payee, balances[payee.account_id], amount)
    order_id = uuid.uuid4()
    ledger.post(
        session,
        at=now,
        kind=unlock_kind,
        reference=unlock_reference,
        legs=[(source_account, -amount), (payer.account_id, amount)],
    )
    entry = ledger.post(
        session,
        at=now,
        kind="payment_out" if cross else "payment",
        reference=str(order_id),
        legs=[(payer.account_id, -amount), (credit, amount)],
    )
    if overflow and payee is not None:
        legs: list[Leg] = [
            (payee.account_id, -overflow),
            (ctx.account("vault_float"), overflow),
            (ctx.account("deposits_contra"), -overflow),
            (payee_deposit(session, payee.customer_id), overflow),
        ]
        ledger.post(session, at=now, kind="waterfall_sweep", reference=str(order_id), legs=legs)
    return wallet_repo.add_order(
        session,
        Order(
            id=order_id,
            wallet_id=payer.id,
            nonce=nonce,
            kind="payment",
            amount=amount,
            counterparty=payee_id,
            body=order,
            signature=signature,
            order_hash=order_hash,
            status="pending_settlement" if cross else "completed",
            entry_id=entry,
            created_at=now,
            updated_at=now,
        ),
    )


def payee_deposit(session: Session, customer_id: int) -> int:
    customer = session.get(Customer, customer_id)
    assert customer is not None
    return int(customer.deposit_account_id)
