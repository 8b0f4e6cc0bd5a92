"""Spending a voucher: the holder pays an eligible merchant from its voucher account.

A voucher payment of X (signed by the holder; the programme not expired; the payee's merchant
category, from the central bank's registry, among the programme's categories; the voucher
covering X; the holder's limits as for a payment) is two entries in one transaction:
`voucher_unlock` (voucher account -> holder wallet) and the payment (holder wallet -> payee, or
-> `in_transit_out` for a payee at another operator, queued with `queue_cross_operator` and
settled like any payment). The payment is an ordinary `payment` order of the holder under the
order's own nonce (so it is idempotent like a payment, shows in the holder's history and at
GET /v1/payments/{id}); the payee receives ordinary money. One the payee's operator returns (or
the central bank or the clearing house refuses) is refunded by the one refund rule
(`operators.settlement.refunds`) through the hook `voucher_refunds`: back into the voucher while
the programme is active, to the issuer once it has expired; never to the holder's wallet (that
would turn earmarked value into free money).

Expiry racing a payment: the payment holds the programme row FOR SHARE and is allowed iff
now < expires_at; the sweep takes the row FOR UPDATE SKIP LOCKED, so it runs before the
payment (which then sees `expired`) or after it commits (and returns what is left).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cbdc.addresses import routing_code
from cbdc.clock import iso
from operators.compliance import aml
from operators.context import OperatorContext
from operators.errors import SelfPayment, UnknownOperator, UnknownWallet
from operators.models import Order
from operators.payments.orders import (
    check_currency,
    check_replay,
    check_signed_order,
    payment_receipt,
)
from operators.programmable import voucher_repository as vrepo
from operators.programmable.merchants import category_of
from operators.programmable.payout import lock_payout_accounts, post_payout
from operators.programmable.programmes import locked
from operators.programmable.voucher_errors import (
    InsufficientVoucherBalance,
    NotEligible,
    VoucherExpired,
)
from operators.rawsql import raw
from operators.settlement.queue import queue_cross_operator
from operators.wallets import limits
from operators.wallets import repository as wallet_repo
from operators.wallets.service import require_wallet


def pay(
    session: Session, ctx: OperatorContext, *, order: dict[str, Any], signature: str
) -> dict[str, Any]:
    """The payment's receipt with the voucher's `voucher` balance after it and `replayed`."""
    now = ctx.now()
    holder = require_wallet(session, ctx, order["payer"])
    check_currency(ctx, order)
    order_hash = check_signed_order(holder, order, signature, now=now)
    programme = locked(session, order["programme"], lock="share")
    voucher = vrepo.voucher(session, programme["id"], holder.id, lock=True)
    previous = wallet_repo.find_order(session, holder.id, order["nonce"])
    if previous is not None:
        check_replay(previous, order_hash)
        return {**payment_receipt(ctx, previous), "replayed": True}
    if programme["status"] != "active" or now >= programme["expires_at"]:
        raise VoucherExpired(
            f"the vouchers of programme {programme['id']} expired at {iso(programme['expires_at'])}"
        )
    payee_id, amount = order["payee"], order["amount"]
    if payee_id == holder.id:
        raise SelfPayment("payer and payee are the same wallet")
    category = category_of(session, ctx, payee_id)
    if category is None or category not in programme["categories"]:
        raise NotEligible(
            f"payee {payee_id} is "
            + ("not a registered merchant" if category is None else f"a {category} merchant")
            + f"; programme {programme['name']!r} pays {', '.join(programme['categories'])}"
        )
    held = 0 if voucher is None else voucher["granted"] - voucher["spent"] - voucher["returned"]
    if voucher is None or held < amount:
        raise InsufficientVoucherBalance(
            f"the voucher holds {limits.fmt_money(ctx, held)}, not {limits.fmt_money(ctx, amount)}"
        )
    payment, replayed = _pay(session, ctx, voucher, holder.id, order, signature, order_hash)
    if replayed:
        return {**payment_receipt(ctx, payment), "replayed": True}
    vrepo.add_to(session, programme["id"], holder.id, spent=amount)
    vrepo.add_event(
        session,
        programme_id=programme["id"],
        holder=holder.id,
        kind="payment",
        amount=amount,
        nonce=order["nonce"],
        body=order,
        signature=signature,
        order_hash=order_hash,
        order_id=payment.id,
        entry_id=payment.entry_id,
        created_at=now,
    )
    return {**payment_receipt(ctx, payment), "voucher": held - amount, "replayed": False}


def _pay(
    session: Session,
    ctx: OperatorContext,
    voucher: dict[str, Any],
    holder_id: str,
    order: dict[str, Any],
    signature: str,
    order_hash: str,
) -> tuple[Order, bool]:
    """Voucher -> holder -> payee (or in transit), limits counted; the payment order and
    whether it was stored already (under this nonce, by a request that committed while this
    one waited for the holder's account: a replay, or a refusal of a different order)."""
    now = ctx.now()
    amount, payee_id = order["amount"], order["payee"]
    cross = routing_code(payee_id) != ctx.code
    payee = None
    if cross:
        if ctx.central_bank.operator(routing_code(payee_id)) is None:
            raise UnknownOperator(f"no operator with routing code {routing_code(payee_id)}")
    else:
        payee = wallet_repo.get_wallet(session, payee_id)
        if payee is None:
            raise UnknownWallet(f"no payee wallet {payee_id}")
    holder = wallet_repo.get_wallet(session, holder_id)
    assert holder is not None
    credit, balances = lock_payout_accounts(session, ctx, voucher["account_id"], holder, payee)
    # The nonce again, now that the holder's account is locked: the first look (under the
    # voucher row only) misses an order under the same nonce of another programme, or an
    # ordinary payment, sent at the same time (every payment of the holder locks its account);
    # storing this one too would break uq_orders_wallet_nonce (a 500).
    previous = wallet_repo.find_order(session, holder_id, order["nonce"])
    if previous is not None:
        check_replay(previous, order_hash)
        return previous, True
    wallet = wallet_repo.get_wallet(session, holder_id, lock=True)
    assert wallet is not None
    limits.require_active(wallet, "payer wallet")
    today, year = limits.local_day(ctx)
    day_total, year_total = limits.check_outgoing_limits(
        ctx, wallet, amount, today=today, year=year
    )
    if balances[voucher["account_id"]] < amount:  # the audit's invariant, checked again
        raise InsufficientVoucherBalance("the voucher account does not hold the amount")
    payment = post_payout(
        session,
        ctx,
        source_account=voucher["account_id"],
        payer=holder,
        payee=payee,
        payee_id=payee_id,
        credit=credit,
        balances=balances,
        amount=amount,
        unlock_kind="voucher_unlock",
        unlock_reference=str(voucher["programme_id"]),
        nonce=order["nonce"],
        order=order,
        signature=signature,
        order_hash=order_hash,
        now=now,
    )
    wallet_repo.update_spend_counters(
        session, wallet.id, day=today, day_total=day_total, year=year, year_total=year_total
    )
    if cross:
        queue_cross_operator(session, ctx, [(payment.id, holder.id, payee_id, amount)])
    # The AML rules of a payment (as pay_many and escrow releases run them): paying from a
    # voucher does not take a payment out of monitoring.
    checks = aml.payment_checks(ctx, [(wallet, payee_id, amount, payee)], now=now)
    with raw(session, checks.query) as conn, conn.cursor() as cursor:
        cursor.execute(checks.query, checks.params)
        hits = cursor.fetchall()
    aml.raise_payment_alerts(session, checks, hits, now=now)
    return payment, False
