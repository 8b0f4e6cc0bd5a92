"""Routes of programmes, vouchers and merchant categories (tag `vouchers`,
docs/programmable.md): a programme (the issuer's signed order), grants (the issuer's signed
orders), voucher payments (the holder's signed order; a refusal keeps its nonce like a
payment's), the programme's view, and the staff's merchant category of a wallet."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cbdc.errors import ValidationFailed
from cbdc.web.auth import StrictJSONRoute, require_role
from operators.deps import Caller, State, refusals_recorded
from operators.programmable import merchants, programmes, voucher_payments
from operators.programmable.voucher_schemas import (
    MerchantCategory,
    SignedGrant,
    SignedProgramme,
    SignedVoucherPayment,
)

router = APIRouter(route_class=StrictJSONRoute)
TAGS: list[str | Any] = ["vouchers"]


@router.post("/v1/programmes", status_code=201, tags=TAGS)
def create_programme(body: SignedProgramme, state: State) -> Any:
    """A programme of purpose-bound vouchers of the issuer wallet (its signed order; the nonce
    is the idempotency key): the merchant categories they may be spent at, a cumulative cap per
    holder, an expiry (future, at most 366 days ahead)."""
    order = body.order.model_dump(exclude_unset=True)
    return state.uow.run(
        None, lambda s: programmes.create(s, state.ctx, order=order, signature=body.signature)
    )


@router.post("/v1/programmes/{programme_id}/grants", status_code=201, tags=TAGS)
def grant(programme_id: str, body: SignedGrant, state: State) -> Any:
    """Fund a holder (a wallet of this operator): issuer wallet -> the holder's voucher of the
    programme, within the per-holder cap, before the expiry."""
    order = body.order.model_dump(exclude_unset=True)
    if order["programme"] != programme_id:
        raise ValidationFailed("order.programme: must match the programme in the path")
    return state.uow.run(
        None,
        lambda s: programmes.grant(
            s, state.ctx, programme_id=programme_id, order=order, signature=body.signature
        ),
    )


@router.post("/v1/vouchers/payments", status_code=201, tags=TAGS)
def pay_with_voucher(body: SignedVoucherPayment, state: State) -> Any:
    """Pay an eligible merchant (its category, registered at the central bank, is one of the
    programme's) from the holder's voucher: the payee receives ordinary money (to another
    operator it settles like any payment and may be `pending_settlement`)."""
    order = body.order.model_dump(exclude_unset=True)
    with refusals_recorded(state, "payment", order, body.signature):
        result = state.uow.run(
            None,
            lambda s: voucher_payments.pay(s, state.ctx, order=order, signature=body.signature),
        )
    if result["status"] == "pending_settlement":
        state.wake_worker()
    return result


@router.get("/v1/programmes/{programme_id}", tags=TAGS)
def get_programme(programme_id: str, caller: Caller, state: State) -> Any:
    """The programme, its totals (granted, spent, returned, outstanding) and holders: for its
    issuer or staff (a holder sees its own voucher only)."""
    require_role(caller, "wallet", "staff")
    wallet_id = caller.subject if caller.role == "wallet" else None
    return state.uow.run(
        caller,
        lambda s: programmes.programme_view(s, state.ctx, programme_id, wallet_id=wallet_id),
    )


@router.put("/v1/admin/wallets/{wallet_id}/merchant-category", tags=TAGS)
def set_merchant_category(
    wallet_id: str, body: MerchantCategory, caller: Caller, state: State
) -> Any:
    """Register (or with `null` remove) the merchant category of a wallet of this operator,
    here and at the central bank's registry (503 if it cannot be reached: nothing changes)."""
    require_role(caller, "staff")
    return state.uow.run(
        caller,
        lambda s: merchants.set_category(s, state.ctx, wallet_id=wallet_id, category=body.category),
    )


@router.get("/v1/merchants/{wallet_id}", tags=TAGS)
def get_merchant_category(wallet_id: str, caller: Caller, state: State) -> Any:
    """The merchant category of a wallet (here or at any operator: the central bank's
    registry); `category` null when it is not a registered merchant."""
    require_role(caller, "wallet", "staff")
    category = state.uow.run(caller, lambda s: merchants.category_of(s, state.ctx, wallet_id))
    return {"wallet_id": wallet_id, "category": category}
