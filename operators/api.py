"""Service-wide routes of an operator: health, info, the audit and running jobs now. Each area has
its own router (`operators.<area>.api`); `operators.app` includes them all. Routes only: auth,
parse, call the service, return."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from cbdc.envelope import operator_audience
from cbdc.web.auth import StrictJSONRoute, require_role
from operators import repository as repo
from operators.deps import Caller, State
from operators.settlement import netting

router = APIRouter(route_class=StrictJSONRoute)


@router.get("/health", tags=["public"])
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/info", tags=["public"])
def info(state: State) -> dict[str, Any]:
    ctx = state.ctx
    return {
        "service": "operator",
        "operator": ctx.code,
        "audience": operator_audience(ctx.code),  # what signed requests here must name
        "name": ctx.name,
        "public_key": ctx.key.public_key,
        "certificate": state.certificate(),
        "central_bank_public_key": ctx.central_bank_public_key,
        "currency": ctx.currency,
        "currency_decimals": ctx.decimals,
        "settlement_mode": ctx.settlement_mode,
        "balance_cap_overflow": ctx.policy.overflow,
        "wallet_classes": {
            c.name: {
                "identification": lim.identification,
                "evidence": list(ctx.policy.required_evidence(c)),
                "balance_cap": lim.balance_cap,
                "single_payment": lim.single_payment,
                "daily": lim.daily,
                "annual": lim.annual,
            }
            for c, lim in ctx.policy.classes.items()
        },
    }


# ------------------------------------------------------------------ staff


@router.get("/v1/admin/audit", tags=["staff"])
def audit(caller: Caller, state: State) -> Any:
    """This operator's side of the cross-tier invariants."""
    require_role(caller, "staff")
    from operators import audit as audit_mod

    return state.uow.run(caller, lambda s: audit_mod.operator_audit(s, state.ctx))


RUN_JOBS_SECONDS = 10.0


@router.post("/v1/admin/jobs/run", tags=["staff"])
def run_jobs(caller: Caller, state: State) -> Any:
    """Run due outbox jobs and the water-mark check now; under net settlement also submit
    every open item and do what the clearing house asks (pay, apply); report what is left
    (`net`: payments and obligations of net settlement not finished here). Runs jobs for at
    most `RUN_JOBS_SECONDS`, so a large backlog (after a load test) is worked off over several
    calls instead of outlasting the caller's timeout; `outbox.pending` says what is left."""
    require_role(caller, "staff")
    state.uow.run(caller, lambda s: None)
    if state.worker is not None:
        state.worker.check_water_marks()
    if netting.is_active(state.runner):
        netting.sync(state.runner, force=True)
    ran = 0
    deadline = time.monotonic() + RUN_JOBS_SECONDS
    while time.monotonic() < deadline:
        n = state.runner.run_due()
        ran += n
        if n == 0:
            break
    counts = state.uow.run(None, repo.outbox_counts)
    net = state.uow.run(None, netting.outstanding)
    return {"ran": ran, "outbox": counts, "net": net}
