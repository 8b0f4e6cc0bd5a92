"""Routes of the merchant category registry (tag `registration`): the operator holding a
wallet sets or removes its category; any signed caller reads it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cbdc.web.auth import StrictJSONRoute, require_role
from central_bank.registration import merchants
from central_bank.schemas import Strict
from central_bank.web import Caller, State

router = APIRouter(route_class=StrictJSONRoute)


class MerchantCategoryBody(Strict):
    category: str | None


@router.put("/v1/registration/merchants/{wallet_id}", tags=["registration"])
def put_merchant(wallet_id: str, body: MerchantCategoryBody, caller: Caller, state: State) -> Any:
    """Set (or, with `null`, remove) the merchant category of a wallet of the calling
    operator (403 `not_wallet_operator` for another operator's wallet)."""
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: merchants.set_category(
            s,
            operator=caller.subject,
            wallet_id=wallet_id,
            category=body.category,
            now=state.clock(),
        ),
    )


@router.get("/v1/registration/merchants/{wallet_id}", tags=["registration"])
def get_merchant(wallet_id: str, caller: Caller, state: State) -> Any:
    """The wallet's merchant category, or 404 `merchant_unknown`."""
    require_role(caller, "operator", "admin", "regulator")
    return state.uow.run(caller, lambda s: merchants.get_category(s, wallet_id))
