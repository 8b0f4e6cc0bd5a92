"""What every area's routes take from a request: the operator's state, the authenticated caller,
the staff Idempotency-Key and the request's hash; and how a refused signed order is kept."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from cbdc.errors import DomainError, Forbidden
from cbdc.web.auth import Principal, request_hash
from operators.payments import orders, signed_batch
from operators.state import OperatorState, get_state

State = Annotated[OperatorState, Depends(get_state)]


# The only route the central bank's own key (key id `central-bank`, the dashboard) may call.
CENTRAL_BANK_ROUTES = frozenset({"/v1/regulator/disclosure-log"})


async def auth(request: Request) -> Principal:
    principal: Principal = await request.app.state.operator.auth(request)
    if principal.role == "central_bank" and request.url.path not in CENTRAL_BANK_ROUTES:
        # Refused here, not by each route: a route open to any signed caller is not open to it.
        raise Forbidden("the central bank's key reads the disclosure log only")
    return principal


Caller = Annotated[Principal, Depends(auth)]
IdemKey = Annotated[str, Header(alias="Idempotency-Key", min_length=8, max_length=100)]
RequestHash = Annotated[str, Depends(request_hash)]


def wallet_or_staff(caller: Principal, wallet_id: str) -> None:
    if caller.role == "staff":
        return
    if caller.role == "wallet" and caller.subject == wallet_id:
        return
    raise Forbidden("only the wallet's own key or operator staff may do this")


@contextmanager
def refusals_recorded(
    state: OperatorState, kind: str, order: dict[str, Any], signature: str
) -> Iterator[None]:
    """A signed order that is refused (4xx) keeps its nonce, with the refusal as its outcome
    (the routes of signed orders: load, unload, offline funding)."""
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
