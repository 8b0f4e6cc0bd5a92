"""Routes of the exchange area: load and unload against the deposit, staff deposit credits,
cash loads and cash withdrawals at the counter."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cbdc.errors import ValidationFailed
from cbdc.web.auth import StrictJSONRoute, require_role
from operators.deps import Caller, IdemKey, RequestHash, State, refusals_recorded
from operators.exchange import service as exchange
from operators.exchange.errors import CashOnHandInsufficient
from operators.exchange.schemas import (
    DepositCredit,
    SignedCashWithdrawal,
    SignedLoad,
    SignedUnload,
)
from operators.schemas import CashLoad

router = APIRouter(route_class=StrictJSONRoute)


@router.post("/v1/wallets/{wallet_id}/load", tags=["exchange"])
def load(wallet_id: str, body: SignedLoad, state: State) -> Any:
    """Deposit -> wallet, authorised by the order's signature (nonce = idempotency key)."""
    if body.order.wallet != wallet_id:
        raise ValidationFailed("order.wallet: must match the wallet in the path")
    order = body.order.model_dump(exclude_unset=True)
    with refusals_recorded(state, "load", order, body.signature):
        result = state.with_float(
            lambda s: exchange.load(s, state.ctx, order=order, signature=body.signature)
        )
    state.wake_worker()
    return result


@router.post("/v1/wallets/{wallet_id}/unload", tags=["exchange"])
def unload(wallet_id: str, body: SignedUnload, state: State) -> Any:
    """Wallet -> deposit, authorised by the order's signature (nonce = idempotency key)."""
    if body.order.wallet != wallet_id:
        raise ValidationFailed("order.wallet: must match the wallet in the path")
    order = body.order.model_dump(exclude_unset=True)
    with refusals_recorded(state, "unload", order, body.signature):
        result = state.uow.run(
            None, lambda s: exchange.unload(s, state.ctx, order=order, signature=body.signature)
        )
    state.wake_worker()
    return result


@router.post("/v1/admin/customers/{customer_id}/deposit", tags=["staff"])
def credit_deposit(
    customer_id: int,
    body: DepositCredit,
    caller: Caller,
    state: State,
    key: IdemKey,
    h: RequestHash,
) -> Any:
    """Simulated bank money arriving in a customer's deposit account (salary, transfer...)."""
    require_role(caller, "staff")
    return state.uow.run(
        caller,
        lambda s: exchange.credit_deposit(
            s,
            state.ctx,
            customer_id=customer_id,
            amount=body.amount,
            key_id=caller.key_id,
            idem_key=key,
            request_hash=h,
        ),
    )


@router.post("/v1/admin/wallets/{wallet_id}/cash-load", tags=["staff"])
def cash_load(
    wallet_id: str, body: CashLoad, caller: Caller, state: State, key: IdemKey, h: RequestHash
) -> Any:
    """Banknotes handed over the counter, loaded into the wallet."""
    require_role(caller, "staff")
    return state.with_float(
        lambda s: exchange.cash_load(
            s,
            state.ctx,
            wallet_id=wallet_id,
            amount=body.amount,
            key_id=caller.key_id,
            idem_key=key,
            request_hash=h,
        ),
        principal=caller,  # the nonce is kept even when the cash load is refused
    )


@router.post("/v1/admin/wallets/{wallet_id}/cash-withdraw", tags=["staff"])
def cash_withdraw(
    wallet_id: str,
    body: SignedCashWithdrawal,
    caller: Caller,
    state: State,
    key: IdemKey,
    h: RequestHash,
) -> Any:
    """Banknotes paid out over the counter from the wallet: staff submit the holder's signed
    `cash_withdrawal` order (the holder's consent; its nonce pays out once)."""
    require_role(caller, "staff")
    if body.order.wallet != wallet_id:
        raise ValidationFailed("order.wallet: must match the wallet in the path")
    order = body.order.model_dump(exclude_unset=True)
    shortage: CashOnHandInsufficient | None = None
    with refusals_recorded(state, "cash_withdrawal", order, body.signature):
        try:
            result = state.uow.run(
                caller,  # the envelope's nonce is kept even when the withdrawal is refused
                lambda s: exchange.cash_withdraw(
                    s,
                    state.ctx,
                    order=order,
                    signature=body.signature,
                    key_id=caller.key_id,
                    idem_key=key,
                    request_hash=h,
                ),
            )
        except CashOnHandInsufficient as exc:
            shortage = exc  # the counter's shortage says nothing about the consent itself
    if shortage is not None:
        raise shortage
    state.wake_worker()  # an AML alert's report, a redemption above the high water mark
    return result
