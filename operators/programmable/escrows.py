"""Escrow: value a payer locks for a payee until a deadline (docs/programmable.md).

Each escrow has a ledger account of its own (`escrow:<n>`, kind `escrow`, never negative),
counted as digital currency in the vault invariant; its balance is always amount - released -
refunded (`operators.audit`). Every change to an escrow locks its row first (then the accounts,
in ascending id order, as every path does), so releases, refunds and the deadline sweep are
serialised on it: concurrent releases never take more than the amount, and a release and the
deadline's refund are decided by one clock (`ctx.now()`): release iff now < deadline, the
automatic refund iff now >= deadline.

- create: the payer's signed order; checked as a payment of that amount (active wallet,
  currency, class limits counted, funds): payer wallet -> escrow account (entry
  `escrow_lock`), order kind `escrow` (its id is the escrow's id; the nonce is the idempotency
  key, a refusal is kept by nonce like a payment's).
- release (`escrow_releases`): escrow -> payer -> payee as an ordinary payment of the payer.
- refund: signed by the arbiter or the payee before the deadline; at the deadline the sweep
  (`escrow_jobs`) refunds what remains, once. Both: escrow account -> payer wallet (entry
  `escrow_refund`), and the refunded value no longer counts against the payer's limits.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.clock import iso, parse_iso
from cbdc.errors import IdempotencyMismatch, InsufficientFunds, ValidationFailed
from operators import repository as repo
from operators.context import OperatorContext
from operators.errors import InvalidWalletId, SelfPayment, UnknownOperator, UnknownWallet
from operators.models import Order
from operators.payments.orders import check_currency, check_replay, check_signed_order
from operators.programmable import escrow_repository as erepo
from operators.programmable.errors import (
    BadArbiter,
    BadDeadline,
    EscrowClosed,
    EscrowExpired,
    NotAParty,
    UnknownEscrow,
)
from operators.wallets import limits
from operators.wallets import repository as wallet_repo
from operators.wallets.service import require_wallet

MAX_DEADLINE = timedelta(days=366)


def create(
    session: Session, ctx: OperatorContext, *, order: dict[str, Any], signature: str
) -> dict[str, Any]:
    """Lock `order["amount"]` of the payer's wallet in a new escrow; the escrow's view (with
    `replayed`: true for the same signed order sent again)."""
    now = ctx.now()
    payer = require_wallet(session, ctx, order["payer"])
    check_currency(ctx, order)
    order_hash = check_signed_order(payer, order, signature, now=now)
    balances = ledger.lock_accounts(session, [payer.account_id])
    previous = wallet_repo.find_order(session, payer.id, order["nonce"])
    if previous is not None:
        check_replay(previous, order_hash)
        escrow = erepo.escrow_by_order(session, previous.id)
        if previous.kind != "escrow" or escrow is None:
            raise IdempotencyMismatch("this nonce was already used by another order")
        return {**view(ctx, escrow), "replayed": True}
    amount = order["amount"]
    deadline = _deadline(order["deadline"], now)
    _check_payee(session, ctx, payer.id, order["payee"])
    arbiter = order.get("arbiter")
    if arbiter is not None:
        _check_arbiter(session, ctx, arbiter, payer.id, order["payee"])
    wallet = wallet_repo.get_wallet(session, payer.id, lock=True)
    assert wallet is not None
    limits.require_active(wallet, "payer wallet")
    today, year = limits.local_day(ctx)
    day_total, year_total = limits.check_outgoing_limits(
        ctx, wallet, amount, today=today, year=year
    )
    if balances[wallet.account_id] < amount:
        raise InsufficientFunds(
            f"payer balance {limits.fmt_money(ctx, balances[wallet.account_id])} "
            f"does not cover {limits.fmt_money(ctx, amount)}"
        )
    escrow_id = uuid.uuid4()
    account = repo.add_numbered_account(session, prefix="escrow", kind="escrow")
    entry = ledger.post(
        session,
        at=now,
        kind="escrow_lock",
        reference=str(escrow_id),
        legs=[(wallet.account_id, -amount), (account, amount)],
    )
    wallet_repo.add_order(
        session,
        Order(
            id=escrow_id,
            wallet_id=wallet.id,
            nonce=order["nonce"],
            kind="escrow",
            amount=amount,
            counterparty=order["payee"],
            body=order,
            signature=signature,
            order_hash=order_hash,
            status="completed",
            entry_id=entry,
            created_at=now,
            updated_at=now,
        ),
    )
    wallet_repo.update_spend_counters(
        session, wallet.id, day=today, day_total=day_total, year=year, year_total=year_total
    )
    erepo.add_escrow(
        session,
        id=escrow_id,
        payer=wallet.id,
        payee=order["payee"],
        arbiter=arbiter,
        amount=amount,
        deadline=deadline,
        memo=order.get("memo"),
        account_id=account,
        order_id=escrow_id,
        created_at=now,
    )
    escrow = erepo.get_escrow(session, escrow_id)
    assert escrow is not None
    return {**view(ctx, escrow), "replayed": False}


def refund(
    session: Session,
    ctx: OperatorContext,
    *,
    escrow_id: str,
    order: dict[str, Any],
    signature: str,
) -> dict[str, Any]:
    """Give what remains back to the payer, before the deadline, on the order of the arbiter
    or of the payee (who may give it up)."""
    now = ctx.now()
    escrow = locked(session, escrow_id)
    by = order["by"]
    if by not in (escrow["arbiter"], escrow["payee"]):
        raise NotAParty("only the arbiter or the payee may refund an escrow to its payer")
    signer = wallet_repo.get_wallet(session, by) if routing_code(by) == ctx.code else None
    if signer is None:  # a payee at another operator: its key is not known here
        raise NotAParty(f"wallet {by} is not held here: its signature cannot be checked")
    order_hash = check_signed_order(signer, order, signature, now=now)
    previous = erepo.find_event(session, escrow["id"], by, order["nonce"])
    if previous is not None:
        if previous["order_hash"] != order_hash:
            raise IdempotencyMismatch("this nonce was already used by a different order")
        return {**view(ctx, escrow), "replayed": True}
    require_open(escrow, now)
    give_back(
        session,
        ctx,
        escrow,
        kind="refund",
        now=now,
        signed={
            "by_wallet": by,
            "nonce": order["nonce"],
            "body": order,
            "signature": signature,
            "order_hash": order_hash,
        },
    )
    return {**view(ctx, locked(session, escrow_id)), "replayed": False}


def give_back(
    session: Session,
    ctx: OperatorContext,
    escrow: dict[str, Any],
    *,
    kind: str,
    now: datetime,
    signed: dict[str, Any] | None = None,
) -> int:
    """Escrow account -> payer wallet, all that remains (the escrow row is locked by the
    caller and open); `kind`: `refund` (signed) or `expiry` (the deadline sweep). The amount."""
    remaining = remaining_of(escrow)
    payer = wallet_repo.get_wallet(session, escrow["payer"])
    assert payer is not None
    ledger.lock_accounts(session, [escrow["account_id"], payer.account_id])
    entry = ledger.post(
        session,
        at=now,
        kind="escrow_refund",
        reference=str(escrow["id"]),
        legs=[(escrow["account_id"], -remaining), (payer.account_id, remaining)],
    )
    # Value back with the payer no longer counts as spent (as a payment that came back).
    limits.unspend(
        session,
        ctx,
        order=Order(
            kind="payment",
            wallet_id=payer.id,
            amount=remaining,
            created_at=escrow["created_at"],
        ),
    )
    erepo.settle(session, escrow["id"], refunded=remaining, now=now)
    erepo.add_event(
        session,
        escrow_id=escrow["id"],
        kind=kind,
        amount=remaining,
        entry_id=entry,
        created_at=now,
        **(signed or {}),
    )
    return remaining


def locked(session: Session, escrow_id: str | uuid.UUID) -> dict[str, Any]:
    escrow = erepo.get_escrow(session, parse_escrow_id(escrow_id), lock=True)
    if escrow is None:
        raise UnknownEscrow(f"no escrow {escrow_id}")
    return escrow


def parse_escrow_id(escrow_id: str | uuid.UUID) -> uuid.UUID:
    if isinstance(escrow_id, uuid.UUID):
        return escrow_id
    try:
        return uuid.UUID(escrow_id)
    except ValueError:
        raise ValidationFailed("escrow id: must be a UUID") from None


def require_open(escrow: dict[str, Any], now: datetime) -> None:
    if escrow["status"] != "open":
        raise EscrowClosed(
            f"escrow {escrow['id']} is closed: {escrow['status']} "
            f"(released {escrow['released']}, refunded {escrow['refunded']})",
            closed_as=escrow["status"],
        )
    if now >= escrow["deadline"]:
        raise EscrowExpired(
            f"escrow {escrow['id']} reached its deadline {iso(escrow['deadline'])}: what "
            "remains goes back to the payer"
        )


def remaining_of(escrow: dict[str, Any]) -> int:
    return int(escrow["amount"] - escrow["released"] - escrow["refunded"])


def view(ctx: OperatorContext, escrow: dict[str, Any]) -> dict[str, Any]:
    return {
        "escrow_id": str(escrow["id"]),
        "status": escrow["status"],
        "payer": escrow["payer"],
        "payee": escrow["payee"],
        "arbiter": escrow["arbiter"],
        "amount": int(escrow["amount"]),
        "released": int(escrow["released"]),
        "refunded": int(escrow["refunded"]),
        "remaining": remaining_of(escrow),
        "currency": ctx.currency,
        "deadline": iso(escrow["deadline"]),
        "memo": escrow["memo"],
        "created_at": iso(escrow["created_at"]),
        "closed_at": iso(escrow["closed_at"]) if escrow["closed_at"] else None,
    }


def escrow_view(
    session: Session, ctx: OperatorContext, escrow_id: str, *, wallet_id: str | None
) -> dict[str, Any]:
    """The escrow with its releases and refunds, for its payer, payee or arbiter (`wallet_id`)
    or staff (None). Others are told it does not exist."""
    escrow = erepo.get_escrow(session, parse_escrow_id(escrow_id))
    if escrow is None or (
        wallet_id is not None
        and wallet_id not in (escrow["payer"], escrow["payee"], escrow["arbiter"])
    ):
        raise UnknownEscrow(f"no escrow {escrow_id}")
    events = [
        {
            "kind": e["kind"],
            "amount": int(e["amount"]),
            "by": e["by_wallet"],
            "payment_id": str(e["order_id"]) if e["order_id"] else None,
            "at": iso(e["created_at"]),
        }
        for e in erepo.events(session, escrow["id"])
    ]
    return {**view(ctx, escrow), "events": events}


def wallet_escrows(
    session: Session, ctx: OperatorContext, wallet_id: str, *, limit: int
) -> dict[str, Any]:
    wallet = require_wallet(session, ctx, wallet_id)
    rows = erepo.wallet_escrows(session, wallet.id, limit=limit)
    return {
        "wallet_id": wallet.id,
        "locked": wallet_repo.escrow_locked(session, wallet.id),
        "escrows": [view(ctx, r) for r in rows],
    }


def _deadline(value: str, now: datetime) -> datetime:
    try:
        deadline = parse_iso(value)
    except ValueError:
        raise ValidationFailed("order.deadline: must be ISO 8601 with a time zone") from None
    if deadline <= now:
        raise BadDeadline("order.deadline: must be in the future")
    if deadline > now + MAX_DEADLINE:
        raise BadDeadline(f"order.deadline: at most {MAX_DEADLINE.days} days ahead")
    return deadline


def _check_payee(session: Session, ctx: OperatorContext, payer: str, payee: str) -> None:
    """The payee as a payment's: a valid id, not the payer, an active wallet here or a
    registered operator's."""
    if not is_valid_wallet_id(payee):
        raise InvalidWalletId(f"payee {payee!r} is not a valid wallet id")
    if payee == payer:
        raise SelfPayment("payer and payee are the same wallet")
    peer = routing_code(payee)
    if peer != ctx.code:
        if ctx.central_bank.operator(peer) is None:
            raise UnknownOperator(f"no operator with routing code {peer}")
        return
    wallet = wallet_repo.get_wallet(session, payee)
    if wallet is None:
        raise UnknownWallet(f"no payee wallet {payee}")
    limits.require_active(wallet, "payee wallet")


def _check_arbiter(
    session: Session, ctx: OperatorContext, arbiter: str, payer: str, payee: str
) -> None:
    """The arbiter signs releases and refunds here: an active wallet of this operator (whose
    key this operator knows), neither the payer nor the payee."""
    if not is_valid_wallet_id(arbiter) or routing_code(arbiter) != ctx.code:
        raise BadArbiter(f"arbiter {arbiter!r}: must be a wallet of operator {ctx.code}")
    if arbiter in (payer, payee):
        raise BadArbiter("the arbiter must be neither the payer nor the payee")
    wallet = wallet_repo.get_wallet(session, arbiter)
    if wallet is None or wallet.status != "active":
        raise BadArbiter(f"arbiter {arbiter}: no active wallet here")
