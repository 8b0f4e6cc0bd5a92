"""Routes of scheduled payments (tag `schedules`): create (the payer's signed `schedule`
order), cancel (a signed envelope of the payer, or staff), and reads (the payer or staff)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cbdc.web.auth import StrictJSONRoute, require_role
from operators.deps import Caller, State, wallet_or_staff
from operators.programmable import schedules
from operators.programmable.schedules_schemas import SignedSchedule

router = APIRouter(route_class=StrictJSONRoute)
TAGS: list[Any] = ["schedules"]


@router.post("/v1/schedules", status_code=201, tags=TAGS)
def create_schedule(body: SignedSchedule, state: State) -> Any:
    """A schedule order signed by the payer's wallet key: pay `amount` to `payee` at `first_at`,
    then every `every` seconds, `count` times at most. Nothing is locked: each execution is a
    payment (same limits and settlement) made by the operator's job runner. The nonce is the
    idempotency key (the same order again answers the same schedule, `replayed`)."""
    order = body.order.model_dump(exclude_unset=True)
    return state.uow.run(
        None,
        lambda s: schedules.create_schedule(s, state.ctx, order=order, signature=body.signature),
    )


@router.post("/v1/schedules/{schedule_id}/cancel", tags=TAGS)
def cancel_schedule(schedule_id: str, caller: Caller, state: State) -> Any:
    """Cancel (signed envelope of the payer's wallet, or staff): no execution after it; one in
    progress finishes first."""
    require_role(caller, "wallet", "staff")
    wallet_id = caller.subject if caller.role == "wallet" else None
    return state.uow.run(
        caller,
        lambda s: schedules.cancel_schedule(
            s, state.ctx, schedule_id=schedule_id, wallet_id=wallet_id
        ),
    )


@router.get("/v1/schedules/{schedule_id}", tags=TAGS)
def get_schedule(schedule_id: str, caller: Caller, state: State) -> Any:
    """The schedule, its signed order and its executions (the payer or staff)."""
    require_role(caller, "wallet", "staff")
    wallet_id = caller.subject if caller.role == "wallet" else None
    return state.uow.run(
        caller,
        lambda s: schedules.get_schedule(s, schedule_id=schedule_id, wallet_id=wallet_id),
    )


@router.get("/v1/wallets/{wallet_id}/schedules", tags=TAGS)
def wallet_schedules(wallet_id: str, caller: Caller, state: State) -> Any:
    """The wallet's schedules as payer, newest first (the wallet or staff)."""
    wallet_or_staff(caller, wallet_id)
    return state.uow.run(caller, lambda s: schedules.wallet_schedules(s, wallet_id))
