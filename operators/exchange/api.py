"""Routes of the exchange area: load and unload against the deposit, staff deposit credits and
cash loads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter

from cbdc.errors import DomainError, ValidationFailed
from cbdc.web.auth import StrictJSONRoute, require_role
from operators.deps import Caller, IdemKey, RequestHash, State
from operators.exchange import service as exchange
from operators.exchange.schemas import DepositCredit, SignedLoad, SignedUnload
from operators.payments import orders, signed_batch
from operators.schemas import CashLoad
from operators.state import OperatorState

router = APIRouter(route_class=StrictJSONRoute)


@contextmanager
def _refusals_recorded(
    state: OperatorState, kind: str, order: dict[str, Any], signature: str
) -> Iterator[None]:
    """A signed order that is refused (4xx) keeps its nonce, with the refusal as its outcome."""
    try:
        yield
    except DomainError as exc:
        if exc.status < 500 and exc.code not in signed_batch.UNRECORDED_REFUSALS:
            failure = exc.code
            state.uow.run(
                None,
                lambda s: orders.record_refused_order(
                    s, state.ctx, kind=kind, order=order, signature=signature, failure=failure
                ),
            )
        raise


@router.post("/v1/wallets/{wallet_id}/load", tags=["exchange"])
def load(wallet_id: str, body: SignedLoad, state: State) -> Any:
    """Deposit -> wallet, authorised by the order's signature (nonce = idempotency key)."""
    if body.order.wallet != wallet_id:
        raise ValidationFailed("order.wallet: must match the wallet in the path")
    order = body.order.model_dump(exclude_unset=True)
    with _refusals_recorded(state, "load", order, body.signature):
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
    with _refusals_recorded(state, "unload", order, body.signature):
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
