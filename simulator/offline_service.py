"""The engine's calls into an operator's offline service (`operators/offline`), each in a
transaction of its own at the simulated clock, for simulated customers: no signed orders, like
`pay_many` for online payments (the services' own checks, limits and ledger apply).

The functions take the operator's state; `simulator/offline.py` calls them.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy.orm import Session

from operators.context import OperatorContext
from operators.offline import devices, funding, revocations
from operators.offline import sync as offline_sync
from operators.state import OperatorState
from operators.wallets import repository as wallet_repo
from wallets.offline.secure_element import SecureElement


def register(state: OperatorState, *, wallet_id: str, public_key: str) -> dict[str, Any]:
    """Register a device key to a wallet; the registration answer (certificates, limits)."""
    return state.uow.run(  # type: ignore[no-any-return]
        None,
        functools.partial(
            devices.register_device,
            ctx=state.ctx,
            wallet_id=wallet_id,
            public_key=public_key,
            name=f"sim-{public_key[:8]}",
        ),
    )


def _fund(
    session: Session, ctx: OperatorContext, *, device: SecureElement, amount: int, nonce: str
) -> dict[str, Any] | None:
    balance = wallet_repo.wallet_balances(session, [device.wallet_id]).get(device.wallet_id, 0)
    amount = min(amount, int(balance))
    if amount <= 0:
        return None
    answer = funding.fund(session, ctx, device_id=device.device_id, amount=amount, nonce=nonce)
    return answer["funding"]  # type: ignore[no-any-return]


def fund_device(
    state: OperatorState, *, device: SecureElement, amount: int, nonce: str
) -> dict[str, Any] | None:
    """Fund the device's purse with `amount`, or as much of it as the wallet holds; the signed
    funding record, or None when the wallet is empty."""
    return state.uow.run(  # type: ignore[no-any-return]
        None, functools.partial(_fund, ctx=state.ctx, device=device, amount=amount, nonce=nonce)
    )


def revocation_list(state: OperatorState) -> dict[str, Any]:
    """The central bank's signed revocation list, as the operator fetches it for a sync."""
    return revocations.latest_list(state.ctx)


def sync(state: OperatorState, *, batch: dict[str, Any], listed: dict[str, Any]) -> dict[str, Any]:
    """A device's signed sync batch (as `SecureElement.sync_batch` makes it) taken by its
    operator, handing over `listed` (`revocation_list`, fetched before the transaction as the
    API does); the answer the device applies. A loss the vault float cannot cover obtains
    issuance first (`with_float`), as the API does."""
    document = batch["batch"]
    work = functools.partial(
        offline_sync.sync_device,
        ctx=state.ctx,
        device_id=document["device"],
        sent=document["sent"],
        received=document["received"],
        counter=document["counter"],
        revocations=listed,
    )
    return state.with_float(work)  # type: ignore[no-any-return]


__all__ = ["fund_device", "register", "revocation_list", "sync"]
