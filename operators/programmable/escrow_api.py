"""Routes of escrow (tag `escrow`, docs/programmable.md): create (the payer's signed order),
release and refund (signed by the party entitled), the escrow and a wallet's escrows (signed
envelopes of a party, or staff). A refused escrow order keeps its nonce like a payment's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from cbdc.errors import ValidationFailed
from cbdc.web.auth import StrictJSONRoute, require_role
from operators.deps import Caller, State, refusals_recorded, wallet_or_staff
from operators.programmable import escrow_releases, escrows
from operators.programmable.escrow_schemas import (
    SignedEscrow,
    SignedEscrowRefund,
    SignedEscrowRelease,
)

router = APIRouter(route_class=StrictJSONRoute)
TAGS: list[str | Any] = ["escrow"]


@router.post("/v1/escrows", status_code=201, tags=TAGS)
def create_escrow(body: SignedEscrow, state: State) -> Any:
    """Lock value of the payer's wallet for a payee until `deadline` (order signed by the
    payer; its nonce is the idempotency key). Checked as a payment of that amount: active
    wallet, currency, class limits (counted), funds. `arbiter` (optional) must be a wallet of
    this operator: it signs releases and refunds here, so its key must be known here."""
    order = body.order.model_dump(exclude_unset=True)
    with refusals_recorded(state, "escrow", order, body.signature):
        return state.uow.run(
            None, lambda s: escrows.create(s, state.ctx, order=order, signature=body.signature)
        )


@router.post("/v1/escrows/{escrow_id}/release", tags=TAGS)
def release_escrow(escrow_id: str, body: SignedEscrowRelease, state: State) -> Any:
    """Release `amount` (part or all of what remains) to the payee: signed by the arbiter, or
    by the payer when there is none; only before the deadline. The payee is paid as by an
    ordinary payment of the payer (`payment`: its receipt; to another operator it settles
    through the central bank and may be `pending_settlement`)."""
    order = body.order.model_dump(exclude_unset=True)
    if order["escrow"] != escrow_id:
        raise ValidationFailed("order.escrow: must match the escrow in the path")
    result = state.uow.run(
        None,
        lambda s: escrow_releases.release(
            s, state.ctx, escrow_id=escrow_id, order=order, signature=body.signature
        ),
    )
    if result["payment"]["status"] == "pending_settlement":
        state.wake_worker()
    return result


@router.post("/v1/escrows/{escrow_id}/refund", tags=TAGS)
def refund_escrow(escrow_id: str, body: SignedEscrowRefund, state: State) -> Any:
    """Give what remains back to the payer before the deadline: signed by the arbiter, or by
    the payee (who gives it up). At the deadline it goes back by itself."""
    order = body.order.model_dump(exclude_unset=True)
    if order["escrow"] != escrow_id:
        raise ValidationFailed("order.escrow: must match the escrow in the path")
    return state.uow.run(
        None,
        lambda s: escrows.refund(
            s, state.ctx, escrow_id=escrow_id, order=order, signature=body.signature
        ),
    )


@router.get("/v1/escrows/{escrow_id}", tags=TAGS)
def get_escrow(escrow_id: str, caller: Caller, state: State) -> Any:
    """The escrow and its releases and refunds: for its payer, arbiter, payee (if a wallet
    here) or staff."""
    require_role(caller, "wallet", "staff")
    wallet_id = caller.subject if caller.role == "wallet" else None
    return state.uow.run(
        caller, lambda s: escrows.escrow_view(s, state.ctx, escrow_id, wallet_id=wallet_id)
    )


@router.get("/v1/wallets/{wallet_id}/escrows", tags=TAGS)
def wallet_escrows(
    wallet_id: str,
    caller: Caller,
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """The escrows the wallet pays, receives or arbitrates here, newest first, and `locked`
    (what its open escrows as payer still hold)."""
    wallet_or_staff(caller, wallet_id)
    return state.uow.run(
        caller, lambda s: escrows.wallet_escrows(s, state.ctx, wallet_id, limit=limit)
    )
