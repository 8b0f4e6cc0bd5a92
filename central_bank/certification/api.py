"""Routes of the certification centre: registering operators, their quotas and reserves
(admin); the directory of operator certificates; an operator's own position."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cbdc.web.auth import StrictJSONRoute, require_role
from central_bank.certification import repository as certification_repo
from central_bank.certification import service as certification
from central_bank.certification.schemas import FundReserves, OperatorOut, RegisterOperator, SetQuota
from central_bank.operations import Idempotency
from central_bank.web import Caller, IdemKey, RequestHash, State

router = APIRouter(route_class=StrictJSONRoute)


@router.post("/v1/admin/operators", status_code=201, response_model=OperatorOut, tags=["admin"])
def register_operator(body: RegisterOperator, caller: Caller, state: State) -> Any:
    require_role(caller, "admin")
    return state.uow.run(
        caller,
        lambda s: OperatorOut.model_validate(
            certification.register_operator(s, state.cb, **body.model_dump(), now=state.clock()),
            from_attributes=True,
        ),
    )


@router.put("/v1/admin/operators/{code}/quota", response_model=OperatorOut, tags=["admin"])
def set_quota(code: str, body: SetQuota, caller: Caller, state: State) -> Any:
    require_role(caller, "admin")
    return state.uow.run(
        caller,
        lambda s: OperatorOut.model_validate(
            certification.set_quota(s, code=code, quota=body.quota), from_attributes=True
        ),
    )


@router.post("/v1/admin/operators/{code}/reserves", tags=["admin"])
def fund_reserves(
    code: str, body: FundReserves, caller: Caller, state: State, key: IdemKey, h: RequestHash
) -> Any:
    require_role(caller, "admin")
    return state.uow.run(
        caller,
        lambda s: certification.fund_reserves(
            s,
            state.cb,
            operator=certification.require_operator(s, code),
            amount=body.amount,
            idem=Idempotency(key, h),
            now=state.clock(),
        ),
    )


@router.get("/v1/operators", response_model=list[OperatorOut], tags=["certification"])
def list_operators(caller: Caller, state: State) -> Any:
    """The directory of operator certificates (any authenticated party)."""
    return state.uow.run(
        caller,
        lambda s: [
            OperatorOut.model_validate(o, from_attributes=True)
            for o in certification_repo.list_operators(s)
        ],
    )


@router.get("/v1/operators/me", tags=["operator"])
def my_position(caller: Caller, state: State) -> Any:
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: certification.operator_position(
            s, certification.require_operator(s, caller.subject)
        ),
    )
