"""Routes of the certification centre: registering operators, their quotas and reserves
(admin); the directory of operator certificates; an operator's own position; the list of
revoked offline devices."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from cbdc.web.auth import StrictJSONRoute, require_role
from central_bank.certification import repository as certification_repo
from central_bank.certification import revocations
from central_bank.certification import service as certification
from central_bank.certification.schemas import (
    FundReserves,
    OperatorOut,
    RegisterOperator,
    RevocationOut,
    RevokeDevice,
    SetQuota,
    SignedRevocationList,
)
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


@router.post(
    "/v1/certification/offline-revocations",
    status_code=201,
    response_model=RevocationOut,
    tags=["certification"],
    responses={200: {"model": RevocationOut, "description": "the device was already revoked"}},
)
def revoke_offline_device(
    body: RevokeDevice, caller: Caller, state: State, response: Response
) -> Any:
    """An operator revokes one of its offline devices (a double spend was detected): 201 with
    the new entry, or 200 with the first one if the device was already revoked (idempotent per
    device). Another operator's device: 403 `offline_revocation_not_operator`; the same device
    under another serial: 409 `offline_revocation_conflict`."""
    require_role(caller, "operator")
    revocation = state.uow.run(
        caller,
        lambda s: revocations.revoke(
            s,
            operator=certification.require_operator(s, caller.subject),
            **body.model_dump(),
            now=state.clock(),
        ),
    )
    if not revocation.created:
        response.status_code = 200
    return revocation.answer()


@router.get(
    "/v1/certification/offline-revocations",
    response_model=SignedRevocationList,
    tags=["certification"],
)
def offline_revocation_list(caller: Caller, state: State) -> Any:
    """Every revoked offline device, signed with the central bank's key (any authenticated
    caller): operators hand it to their devices at each sync, and a payee device refuses a
    revoked payer offline. `version` is the number of entries (it only grows)."""
    return state.uow.run(
        caller, lambda s: revocations.signed_list(s, key=state.cb.key, now=state.clock())
    )
