"""Queue cross-operator payments for settlement, whichever way this operator settles now."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session

from operators.context import OperatorContext
from operators.models import Order


def queue_cross_operator(
    session: Session,
    ctx: OperatorContext,
    payments: Sequence[tuple[uuid.UUID, str, str, int]],
) -> None:
    """In the payments' transaction: queue `payments` ((order id, payer wallet, payee wallet,
    amount), each already posted to `in_transit_out` with its order `pending_settlement`) for
    settlement through the central bank: batched gross (`rtgs`) or deferred net (`net`) as
    `ctx.settlement_mode` says. Used by the payment batch path and by offline payments."""
    if not payments:
        return
    if ctx.settlement_mode == "net":
        from operators.settlement import net_submission

        net_submission.queue_net_items(
            session,
            ctx,
            [
                {
                    "order_id": order_id,
                    "payee_wallet": payee,
                    "payer_alias": ctx.payer_alias(payer, payee),
                    "amount": amount,
                }
                for order_id, payer, payee, amount in payments
            ],
        )
        return
    from operators.settlement import rtgs

    rtgs.queue_payments(
        session,
        ctx,
        [
            (order_id, Order(wallet_id=payer, counterparty=payee, amount=amount))
            for order_id, payer, payee, amount in payments
        ],
    )
