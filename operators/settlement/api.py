"""Routes of the settlement area: settlements delivered by other operators (interop)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cbdc.web.auth import StrictJSONRoute, require_role
from operators.deps import Caller, State
from operators.settlement import delivery as settlement
from operators.settlement import rtgs_inbound
from operators.settlement.schemas import InboundSettlementBatchIn, InboundSettlementIn

router = APIRouter(route_class=StrictJSONRoute)


@router.post("/v1/interop/settlements", tags=["interop"])
def receive_settlement(body: InboundSettlementIn, caller: Caller, state: State) -> Any:
    """Another operator delivers a settlement the central bank has signed."""
    require_role(caller, "operator")
    result = state.uow.run(
        caller,
        lambda s: settlement.receive(
            s, state.ctx, payer_operator=caller.subject, body=body.model_dump()
        ),
    )
    state.wake_worker()
    return result


@router.post("/v1/interop/settlements/batch", tags=["interop"])
def receive_settlement_batch(body: InboundSettlementBatchIn, caller: Caller, state: State) -> Any:
    """Another operator delivers settlements the central bank settled in one batch: one
    transaction credits every item; the answer has, per item, its outcome (`credited`,
    `returning`, or `rejected` with a reason while the others go on) and whether it was seen
    before (`replayed`)."""
    require_role(caller, "operator")
    result = state.uow.run(
        caller,
        lambda s: rtgs_inbound.receive_batch(
            s,
            state.ctx,
            payer_operator=caller.subject,
            items=[item.model_dump() for item in body.items],
        ),
    )
    state.wake_worker()
    return result
