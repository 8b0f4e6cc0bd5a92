"""Routes of the registration centre: issuance, redemption, splitting, token status and RTGS
settlement between operators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cbdc.errors import ValidationFailed
from cbdc.web.auth import StrictJSONRoute, require_role
from central_bank.certification import service as certification
from central_bank.operations import Idempotency
from central_bank.registration import service as registration
from central_bank.registration.schemas import (
    IssueRequest,
    RedeemRequest,
    SettleRequest,
    SplitRequest,
)
from central_bank.web import Caller, IdemKey, RequestHash, State

router = APIRouter(route_class=StrictJSONRoute)


@router.post("/v1/issuance", status_code=201, tags=["operator"])
def issue(body: IssueRequest, caller: Caller, state: State, key: IdemKey, h: RequestHash) -> Any:
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: registration.issue_tokens(
            s,
            state.cb,
            operator=certification.require_operator(s, caller.subject),
            amount=body.amount,
            idem=Idempotency(key, h),
            now=state.clock(),
        ),
    )


@router.post("/v1/redemption", tags=["operator"])
def redeem(body: RedeemRequest, caller: Caller, state: State, key: IdemKey, h: RequestHash) -> Any:
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: registration.redeem_tokens(
            s,
            state.cb,
            operator=certification.require_operator(s, caller.subject),
            serials=body.serials,
            amount=body.amount,
            idem=Idempotency(key, h),
            now=state.clock(),
        ),
    )


@router.post("/v1/tokens/split", tags=["operator"])
def split(body: SplitRequest, caller: Caller, state: State, key: IdemKey, h: RequestHash) -> Any:
    require_role(caller, "operator")
    if any(amount <= 0 for amount in body.outputs):
        raise ValidationFailed("outputs: every output must be positive")
    return state.uow.run(
        caller,
        lambda s: registration.split_tokens(
            s,
            state.cb,
            operator=certification.require_operator(s, caller.subject),
            serials=body.serials,
            outputs=body.outputs,
            idem=Idempotency(key, h),
            now=state.clock(),
        ),
    )


@router.get("/v1/tokens/{serial}", tags=["registration"])
def token_status(serial: str, caller: Caller, state: State) -> Any:
    require_role(caller, "operator", "admin")
    return state.uow.run(
        caller,
        lambda s: registration.token_status(
            s,
            serial=serial,
            operator=certification.require_operator(s, caller.subject)
            if caller.role == "operator"
            else None,
        ),
    )


@router.post("/v1/settlements", status_code=201, tags=["registration"])
def settle(body: SettleRequest, caller: Caller, state: State, key: IdemKey, h: RequestHash) -> Any:
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: registration.settle(
            s,
            state.cb,
            operator=certification.require_operator(s, caller.subject),
            payee_code=body.payee_operator,
            amount=body.amount,
            serials=body.serials,
            reference=body.reference,
            idem=Idempotency(key, h),
            now=state.clock(),
        ),
    )
