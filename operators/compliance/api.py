"""Routes of the compliance area: the regulator's disclosure orders and log, AML alerts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from cbdc.web.auth import StrictJSONRoute, require_role
from operators.compliance import disclosure
from operators.compliance import repository as aml_repo
from operators.compliance.schemas import SignedDisclosureOrder
from operators.deps import Caller, State

router = APIRouter(route_class=StrictJSONRoute)


@router.post("/v1/regulator/disclosures", tags=["regulator"])
def disclose(body: SignedDisclosureOrder, state: State) -> Any:
    """Release a wallet's identity escrow (sealed to the regulator) against a disclosure order
    signed by the regulator's key. The order is appended to the hash-chained disclosure log
    before anything is released; a replayed order is refused. With `as_of` the identity in
    force at that time is released, else every version with its validity period."""
    order = body.order.model_dump(exclude_unset=True)  # the fields signed, `as_of` if given
    released = state.uow.run(
        None, lambda s: disclosure.disclose(s, state.ctx, order=order, signature=body.signature)
    )
    # Register the log's new head with the central bank now; if it cannot be reached, the
    # outbox job queued with the entry is retried by the worker.
    state.run_job_now(disclosure.anchor_reference(released["log"]["seq"]))
    state.wake_worker()
    return released


@router.get("/v1/regulator/disclosure-log", tags=["regulator"])
def disclosure_log(caller: Caller, state: State) -> Any:
    """The whole disclosure log, for the regulator (or staff) to verify the chain itself, and
    for the central bank's dashboard (key id `central-bank`; no other route accepts it)."""
    require_role(caller, "regulator", "staff", "central_bank")
    return state.uow.run(caller, lambda s: {"entries": disclosure.log_rows(s)})


@router.get("/v1/admin/disclosure-log/verify", tags=["staff"])
def verify_disclosure_log(caller: Caller, state: State) -> Any:
    """The log's hash chain and the regulator's signature on every logged order."""
    require_role(caller, "staff", "regulator")
    return state.uow.run(caller, lambda s: disclosure.verify_log(s, state.ctx))


@router.get("/v1/admin/aml/alerts", tags=["staff"])
def aml_alerts(
    caller: Caller,
    state: State,
    rule: str | None = None,
    wallet: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """AML alerts raised at this operator (also reported to the analysis centre)."""
    require_role(caller, "staff")
    return state.uow.run(
        caller,
        lambda s: {"alerts": aml_repo.list_alerts(s, rule=rule, wallet_id=wallet, limit=limit)},
    )
