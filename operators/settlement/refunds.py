"""Giving a cross-operator payment back to its payer (the central bank refused its settlement,
the clearing house refused its submission, or the payee's operator returned it): the legs of the
refund entry, one rule for every refund path.

A plain payment: source -X, payer's wallet +X.

An offline payment (`operators.offline.adjudication`, order kind `offline_payment`) was paid
from the device's purse (take), the payer's wallet (recovered, an overspend made good) and the
vault float (loss, recorded in the fraud-loss memorandum pair). Giving it back undoes that
entry, except that what the purse held goes to the payer's online WALLET, not back into the
purse: the device's secure element already spent it and will never spend it again, so value
put back into the purse account could only leave it by a defund the device would refuse. So:
source -X, wallet +(take + recovered), vault_float +loss, fraud_losses -loss,
fraud_losses_contra +loss; the adjudication log forgets the recovery and the loss
(`operators.offline.repository.unbook`, reached through `ctx.refund_hooks` so that settlement
does not import the offline area), so `fraud_losses` still equals the recorded losses.
This is what the payer's operator does at once for a payee of its own that cannot take an
offline payment (the wallet gets what the purse held; nothing is recovered, nothing lost).

A voucher payment (order kind `payment`, body type `voucher_payment`) never comes back as free
money: source -X, and +X to the holder's voucher account while the programme is active, else to
the programme's issuer wallet (the hook `ctx.refund_hooks["voucher_payment"]`,
`operators.programmable.voucher_refunds`, which also records it in the voucher's totals).
`extra_accounts` first locks the programmes and vouchers of such orders (as a payment takes
them: before the ledger accounts) and adds the accounts a refund may credit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc.ledger import Leg
from operators.context import OperatorContext
from operators.models import Order

OFFLINE = "offline_payment"
VOUCHER = "voucher_payment"  # the body type of a voucher payment's order (kind `payment`)
VOUCHER_LOCK = "voucher_payment:lock"  # its hook locking the programme and voucher rows
SYSTEM = ("vault_float", "fraud_losses", "fraud_losses_contra")


def is_voucher(order: Order) -> bool:
    body = order.body
    return order.kind == "payment" and isinstance(body, dict) and body.get("type") == VOUCHER


def _hook(ctx: OperatorContext, name: str) -> Callable[..., Any]:
    hook = ctx.refund_hooks.get(name)
    if hook is None:  # a context not composed by operators.state: refuse, never half-refund
        raise RuntimeError(f"no refund hook {name!r} in this operator's context")
    return hook


def extra_accounts(session: Session, ctx: OperatorContext, orders: Sequence[Order]) -> set[int]:
    """Accounts a refund of `orders` touches besides the source and the payers' wallets (to
    lock them with the rest, once, in ascending order). Locks the programme and voucher rows
    of the voucher payments among them first (call it before locking the accounts)."""
    extra: set[int] = set()
    if any(o.kind == OFFLINE for o in orders):
        extra |= {ctx.account(code) for code in SYSTEM}
    vouchers = [o for o in orders if is_voucher(o)]
    if vouchers:
        extra |= set(_hook(ctx, VOUCHER_LOCK)(session, vouchers))
    return extra


def refund_legs(
    session: Session,
    ctx: OperatorContext,
    order: Order,
    source: int,
    wallet_account: int,
    amount: int | None = None,
) -> list[Leg]:
    """The legs giving `amount` (the order's whole amount, its default) from `source` back to
    the payer's wallet account (a voucher payment's: to its voucher or the issuer, recorded).
    For an offline payment, also forgets its recovery and loss in the adjudication log (in the
    caller's transaction)."""
    amount = order.amount if amount is None else amount
    if is_voucher(order):  # into the voucher, or to the issuer once expired
        target = int(_hook(ctx, VOUCHER)(session, order, amount, ctx.now()))
        return [(source, -amount), (target, amount)]
    if order.kind != OFFLINE or order.entry_id is None:
        return [(source, -amount), (wallet_account, amount)]
    rows = session.execute(
        text(
            "SELECT p.account_id, p.amount, a.kind FROM postings p "
            "JOIN accounts a ON a.id = p.account_id WHERE p.entry_id = :e"
        ),
        {"e": order.entry_id},
    ).all()
    in_transit = ctx.account("in_transit_out")
    legs: dict[int, int] = {source: -amount}
    for row in rows:
        account, value = int(row.account_id), int(row.amount)
        if account == in_transit:
            continue  # what the payment credited: `source` holds it now
        if row.kind == "offline_purse" or account == wallet_account:
            legs[wallet_account] = legs.get(wallet_account, 0) - value
        else:
            legs[account] = legs.get(account, 0) - value
    if sum(legs.values()) != 0:  # not the entry adjudication posts: refund it plainly
        return [(source, -amount), (wallet_account, amount)]
    _hook(ctx, OFFLINE)(session, order.id)
    return [(a, v) for a, v in sorted(legs.items()) if v != 0]
