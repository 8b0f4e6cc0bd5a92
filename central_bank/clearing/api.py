"""Routes of the clearing centre: RTGS batches, and deferred net settlement (submissions,
obligations, paying and acknowledging them, closing a cycle, its statistics)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from cbdc.web.auth import StrictJSONRoute, require_role
from central_bank.certification import service as certification
from central_bank.clearing import cycles, obligations, payments, rtgs, stats, submissions
from central_bank.clearing.schemas import (
    AcknowledgeObligation,
    ClearingSubmission,
    PayObligation,
    SettleBatchRequest,
)
from central_bank.operations import Idempotency
from central_bank.web import Caller, IdemKey, RequestHash, State

router = APIRouter(route_class=StrictJSONRoute)


@router.post("/v1/settlements/batch", status_code=201, tags=["registration"])
def settle_batch(
    body: SettleBatchRequest, caller: Caller, state: State, key: IdemKey, h: RequestHash
) -> Any:
    """Batched gross settlement: the inputs are spent once, each item settles gross and final
    to its payee operator with its own signed receipt and minted token(s), or is refused on
    its own (`status: refused` with a problem `code`); the change comes back once. Idempotent
    on the Idempotency-Key (the same signed answer again) and per item on its `reference`
    (an item settled before is answered from its stored receipt, never settled twice)."""
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: rtgs.settle_batch(
            s,
            state.cb,
            operator=certification.require_operator(s, caller.subject),
            reference=body.reference,
            serials=body.serials,
            items=[item.model_dump() for item in body.items],
            idem=Idempotency(key, h),
            now=state.clock(),
        ),
    )


@router.post("/v1/clearing/submissions", status_code=201, tags=["clearing"])
def submit_for_clearing(
    body: ClearingSubmission, caller: Caller, state: State, h: RequestHash
) -> Any:
    """An operator submits cross-operator payments to one payee operator for the next clearing
    cycle. Idempotent on `submission_id`. No money moves until the cycle's obligations are
    paid."""
    require_role(caller, "operator")
    answer = state.uow.run(
        caller,
        lambda s: submissions.submit(
            s,
            operator=certification.require_operator(s, caller.subject),
            submission=body.model_dump(),
            request_hash=h,
            now=state.clock(),
        ),
    )
    state.close_if_full()
    return answer


@router.get("/v1/clearing/obligations", tags=["clearing"])
def list_obligations(
    caller: Caller,
    state: State,
    actionable: bool = False,
    cycle: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Pair settlement obligations: an operator sees only those it is party to (`actionable`:
    those it still has to pay, or apply and acknowledge); the admin sees all."""
    require_role(caller, "operator", "admin")
    return state.uow.run(
        caller,
        lambda s: {
            "obligations": obligations.list_obligations(
                s,
                operator=certification.require_operator(s, caller.subject)
                if caller.role == "operator"
                else None,
                actionable=actionable,
                cycle_id=cycle,
                limit=limit,
            )
        },
    )


@router.get("/v1/clearing/obligations/{obligation_id}", tags=["clearing"])
def obligation_detail(
    obligation_id: str,
    caller: Caller,
    state: State,
    items: bool = True,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=obligations.MAX_ITEMS_PAGE)] = obligations.MAX_ITEMS_PAGE,
) -> Any:
    """One obligation as its party sees it: the signed pair-settlement receipt once settled,
    the tokens minted to the caller, and (a page of) the items addressed to the caller."""
    require_role(caller, "operator", "admin")
    return state.uow.run(
        caller,
        lambda s: obligations.detail(
            s,
            operator=certification.require_operator(s, caller.subject)
            if caller.role == "operator"
            else None,
            obligation_id=obligation_id,
            items=items,
            offset=offset,
            limit=limit,
        ),
    )


@router.post("/v1/clearing/obligations/{obligation_id}/pay", tags=["clearing"])
def pay_obligation(
    obligation_id: str,
    body: PayObligation,
    caller: Caller,
    state: State,
    key: IdemKey,
    h: RequestHash,
) -> Any:
    """The debtor pays the net with vault tokens: the central bank spends them, mints the net
    to the creditor and the change to the debtor, and signs the pair-settlement receipt."""
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: payments.pay(
            s,
            state.cb,
            operator=certification.require_operator(s, caller.subject),
            obligation_id=obligation_id,
            serials=body.serials,
            idem=Idempotency(key, h),
            now=state.clock(),
        ),
    )


@router.post("/v1/clearing/obligations/{obligation_id}/ack", tags=["clearing"])
def acknowledge_obligation(
    obligation_id: str, body: AcknowledgeObligation, caller: Caller, state: State
) -> Any:
    """A party has applied the settled pair (and names the payments it is sending back)."""
    require_role(caller, "operator")
    return state.uow.run(
        caller,
        lambda s: obligations.acknowledge(
            s,
            operator=certification.require_operator(s, caller.subject),
            obligation_id=obligation_id,
            returned=body.returned,
            now=state.clock(),
        ),
    )


@router.post("/v1/admin/clearing/close", tags=["admin"])
def close_clearing_cycle(caller: Caller, state: State) -> Any:
    """Close a clearing cycle now (besides the timer and the item threshold)."""
    require_role(caller, "admin")
    return state.uow.run(
        caller,
        lambda s: {"cycle": cycles.close_cycle(s, state.cb, now=state.clock(), trigger="admin")},
    )


@router.get("/v1/stats/clearing", tags=["analysis"])
def clearing_stats(
    caller: Caller,
    state: State,
    after_cycle: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Per clearing cycle and operator pair: gross both ways and net; per operator: liquidity
    used by net settlement against what RTGS would have needed."""
    require_role(caller, "admin", "regulator")
    return state.uow.run(
        caller,
        lambda s: {
            "position": stats.clearing_position(s),
            "operators": stats.liquidity_stats(s),
            "cycles": stats.cycle_stats(s, after_cycle=after_cycle, limit=limit),
        },
    )
