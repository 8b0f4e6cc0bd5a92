"""What every area's routes take from a request: the operator's state, the authenticated caller,
the staff Idempotency-Key and the request's hash."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from cbdc.errors import Forbidden
from cbdc.web.auth import Principal, request_hash
from operators.state import OperatorState, get_state

State = Annotated[OperatorState, Depends(get_state)]


async def auth(request: Request) -> Principal:
    return await request.app.state.operator.auth(request)  # type: ignore[no-any-return]


Caller = Annotated[Principal, Depends(auth)]
IdemKey = Annotated[str, Header(alias="Idempotency-Key", min_length=8, max_length=100)]
RequestHash = Annotated[str, Depends(request_hash)]


def wallet_or_staff(caller: Principal, wallet_id: str) -> None:
    if caller.role == "staff":
        return
    if caller.role == "wallet" and caller.subject == wallet_id:
        return
    raise Forbidden("only the wallet's own key or operator staff may do this")
