"""What every centre's router shares: the dependencies (the service state, the
authenticated caller, the Idempotency-Key, the request hash) and the public routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Header, Request

from cbdc.web.auth import Principal, StrictJSONRoute, request_hash
from central_bank.schemas import Info

if TYPE_CHECKING:  # the routers of the centres do not import the composition (state.py)
    from central_bank.state import CentralBankState


async def get_state(request: Request) -> CentralBankState:
    # async: FastAPI would run a plain function in its thread pool, one hop per request
    return request.app.state.cb  # type: ignore[no-any-return]


State = Annotated["CentralBankState", Depends(get_state)]


async def _auth(request: Request) -> Principal:
    return await request.app.state.cb.auth(request)  # type: ignore[no-any-return]


Caller = Annotated[Principal, Depends(_auth)]
# Longer than operators accept from their callers: operators prefix keys they forward.
IdemKey = Annotated[str, Header(alias="Idempotency-Key", min_length=8, max_length=200)]
RequestHash = Annotated[str, Depends(request_hash)]

router = APIRouter(route_class=StrictJSONRoute)


@router.get("/health", tags=["public"])
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/info", response_model=Info, tags=["public"])
def info(state: State) -> Info:
    return Info(
        currency=state.cb.currency,
        currency_decimals=state.decimals,
        public_key=state.cb.key.public_key,
    )
