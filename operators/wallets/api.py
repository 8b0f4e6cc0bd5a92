"""Routes of the wallets area: open a wallet, read it, change its class, its history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from cbdc.policy import WalletClass
from cbdc.web.auth import StrictJSONRoute, require_role
from operators.deps import Caller, State, wallet_or_staff
from operators.wallets import service
from operators.wallets.schemas import ChangeClass, OpenWallet

router = APIRouter(route_class=StrictJSONRoute)


@router.post("/v1/wallets", status_code=201, tags=["wallets"])
def open_wallet(body: OpenWallet, caller: Caller, state: State) -> Any:
    """Open a wallet on the evidence its class needs (see `evidence` in GET /v1/info).
    Self-service, signed with the new wallet's own key (`CBDC-Key-Id: new-wallet`): class IV
    on a phone number, III and II with name, resident ID number and (II) own bank account.
    Class I is opened at the counter: signed with the operator's staff key."""
    require_role(caller, "new-wallet", "staff")
    return state.uow.run(
        caller,
        lambda s: service.open_wallet(
            s,
            state.ctx,
            public_key=body.public_key,
            wallet_class=WalletClass.parse(body.wallet_class),
            customer=body.customer.model_dump() if body.customer else None,
            customer_id=body.customer_id,
            by_staff=caller.role == "staff",
        ),
    )


@router.get("/v1/wallets/{wallet_id}", tags=["wallets"])
def get_wallet(wallet_id: str, caller: Caller, state: State) -> Any:
    wallet_or_staff(caller, wallet_id)
    return state.uow.run(
        caller,
        lambda s: service.wallet_view(
            s, state.ctx, service.require_wallet(s, state.ctx, wallet_id)
        ),
    )


@router.post("/v1/wallets/{wallet_id}/class", tags=["wallets"])
def change_class(wallet_id: str, body: ChangeClass, caller: Caller, state: State) -> Any:
    """Upgrade (with the evidence the new class needs) or downgrade a wallet. Signed by the
    wallet's key, or by staff (needed for class I: identity verified in person)."""
    wallet_or_staff(caller, wallet_id)
    return state.uow.run(
        caller,
        lambda s: service.change_class(
            s,
            state.ctx,
            wallet_id=wallet_id,
            wallet_class=WalletClass.parse(body.wallet_class),
            customer=body.customer.model_dump() if body.customer else None,
            by_staff=caller.role == "staff",
        ),
    )


@router.get("/v1/wallets/{wallet_id}/history", tags=["wallets"])
def wallet_history(
    wallet_id: str,
    caller: Caller,
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Any:
    wallet_or_staff(caller, wallet_id)
    return state.uow.run(
        caller,
        lambda s: service.history(s, state.ctx, wallet_id=wallet_id, limit=limit, before=before),
    )
