"""Routes of the payments area: a signed payment, a signed batch, a payment's status (a
well-formed payment body is answered in front of these by `operators.payments.fast_path`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cbdc.web.auth import StrictJSONRoute, require_role
from operators.deps import Caller, State
from operators.payments import fast_path, orders
from operators.payments.schemas import SignedPayment, SignedPaymentBatch

router = APIRouter(route_class=StrictJSONRoute)


@router.post("/v1/payments", status_code=201, tags=["payments"])
async def pay(body: SignedPayment, state: State) -> Any:
    """A payment order signed by the payer's wallet key. Same-operator payments complete at
    once; cross-operator payments settle through the central bank (RTGS: within the request;
    if the central bank or the payee's operator is unreachable the answer says
    `pending_settlement` and the outbox finishes the job later; net settlement: the answer is
    `pending_settlement` and the payment settles, netted, in the next clearing cycle).
    Concurrent payments share a transaction (`operators.payments.microbatch`); each is judged alone.
    (A well-formed body is answered by `operators.payments.fast_path` in front of this route, with
    the same work: `fast_path.pay_one`.)"""
    return await fast_path.pay_one(state, body.order.model_dump(exclude_unset=True), body.signature)


@router.post("/v1/payments/batch", tags=["payments"])
def pay_batch(body: SignedPaymentBatch, state: State) -> Any:
    """Up to 1000 signed payment orders (any payers of this operator) in one transaction:
    accounts locked once in ascending order, each order checked exactly as a single payment
    and refused alone if it must be. Cross-operator orders are queued for settlement (the
    background worker settles them); poll GET /v1/payments/{id}. The answer lists one result
    per order: `{"ok": true, "receipt": ...}` or `{"ok": false, "problem": {...}}`."""
    items = [(o.order.model_dump(exclude_unset=True), o.signature) for o in body.orders]
    return fast_path.pay_batch(state, items)


@router.get("/v1/payments/{payment_id}", tags=["payments"])
def payment_status(payment_id: str, caller: Caller, state: State) -> Any:
    require_role(caller, "wallet", "staff")
    return state.uow.run(
        caller,
        lambda s: orders.payment_status(
            s,
            state.ctx,
            payment_id=payment_id,
            wallet_id=caller.subject if caller.role == "wallet" else None,
        ),
    )
