"""Routes of the vault area (staff): issuance and redemption now, the vault's position."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cbdc.web.auth import StrictJSONRoute, require_role
from operators.deps import Caller, IdemKey, State
from operators.schemas import CashLoad
from operators.vault import service as vault

router = APIRouter(route_class=StrictJSONRoute)


@router.post("/v1/admin/vault/issue", tags=["staff"])
def request_issuance(body: CashLoad, caller: Caller, state: State, key: IdemKey) -> Any:
    """Ask the central bank for issuance of `amount` into the vault float now."""
    require_role(caller, "staff")
    reference = state.uow.run(
        caller,
        lambda s: vault.queue_issuance(
            s, body.amount, reference=f"issue:{key}", now=state.ctx.now()
        ),
    )
    state.runner.run_reference(reference)
    return state.uow.run(
        None, lambda s: {"reference": reference, **vault.job_outcome(s, reference)}
    )


@router.post("/v1/admin/vault/redeem", tags=["staff"])
def request_redemption(body: CashLoad, caller: Caller, state: State, key: IdemKey) -> Any:
    """Return `amount` of vault float to the central bank now (reserves are credited back)."""
    require_role(caller, "staff")
    reference = state.uow.run(
        caller,
        lambda s: vault.queue_redemption(
            s, body.amount, reference=f"redeem:{key}", now=state.ctx.now()
        ),
    )
    state.runner.run_reference(reference)
    return state.uow.run(
        None, lambda s: {"reference": reference, **vault.job_outcome(s, reference)}
    )


@router.get("/v1/admin/vault", tags=["staff"])
def vault_position(caller: Caller, state: State) -> Any:
    require_role(caller, "staff")
    return state.uow.run(caller, lambda s: vault.vault_position(s, state.ctx))
