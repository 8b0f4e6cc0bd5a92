"""Routes of the offline area (tag `offline`): device registration, funding, defunding, sync,
the device view, the revocation list, the interop claims of other operators, staff totals.

Money moves on signed bodies: the wallet's signed order (register, fund: the nonce is the
idempotency key, refusals are kept by nonce like loads'), or the device's own signature (a
defund transfer, a sync batch). Reads are signed envelopes of the device's wallet or staff."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cbdc import offline as kernel
from cbdc.crypto import verify_json
from cbdc.errors import DomainError, ValidationFailed
from cbdc.web.auth import StrictJSONRoute, require_role
from operators.deps import Caller, State, refusals_recorded
from operators.errors import BadCentralBankDocument
from operators.offline import devices, forwarding, funding
from operators.offline import sync as offline_sync
from operators.offline.errors import rejected
from operators.offline.revocations import latest_list
from operators.offline.schemas import Claims, SignedDeviceOrder, SignedFund, SignedSync
from operators.offline.schemas import SignedTransfer as SignedTransferBody
from operators.payments import orders
from operators.wallets import service as wallet_service

router = APIRouter(route_class=StrictJSONRoute)
TAGS: list[str | Any] = ["offline"]


@router.post("/v1/wallets/{wallet_id}/devices", status_code=201, tags=TAGS)
def register_device(wallet_id: str, body: SignedDeviceOrder, state: State) -> Any:
    """Register an offline device's key to the wallet (order signed by the wallet's key):
    the operator certifies it with the offline limits of the wallet's class. The same key
    again answers the same device (`replayed`)."""
    if body.order.wallet != wallet_id:
        raise ValidationFailed("order.wallet: must match the wallet in the path")
    order = body.order.model_dump(exclude_unset=True)
    try:  # handed over with the certificate; else the device gets it at its first sync
        listed: dict[str, Any] | None = latest_list(state.ctx, max_age=1.0)
    except (DomainError, BadCentralBankDocument):
        listed = None

    def work(s: Any) -> dict[str, Any]:
        wallet = wallet_service.require_wallet(s, state.ctx, wallet_id)
        orders.check_currency(state.ctx, order)
        orders.check_signed_order(wallet, order, body.signature, now=state.ctx.now())
        return devices.register_device(
            s,
            state.ctx,
            wallet_id=wallet_id,
            public_key=order["public_key"],
            name=order["name"],
            revocations=listed,
        )

    return state.uow.run(None, work)


@router.post("/v1/offline/devices/{device_id}/fund", tags=TAGS)
def fund(device_id: str, body: SignedFund, state: State) -> Any:
    """Wallet -> purse (order signed by the device's wallet; the nonce is the idempotency key):
    the signed funding record the device applies. Refused over the certificate's purse cap, on
    insufficient funds, for a revoked device or another wallet's device (403)."""
    if body.order.device != device_id:
        raise ValidationFailed("order.device: must match the device in the path")
    order = body.order.model_dump(exclude_unset=True)

    def work(s: Any) -> dict[str, Any]:
        wallet = wallet_service.require_wallet(s, state.ctx, order["wallet"])
        orders.check_currency(state.ctx, order)
        order_hash = orders.check_signed_order(wallet, order, body.signature, now=state.ctx.now())
        return funding.fund(
            s,
            state.ctx,
            device_id=device_id,
            amount=order["amount"],
            nonce=order["nonce"],
            wallet_id=wallet.id,
            order=order,
            signature=body.signature,
            order_hash=order_hash,
        )

    with refusals_recorded(state, "offline_fund", order, body.signature):
        return state.uow.run(None, work)


@router.post("/v1/offline/devices/{device_id}/defund", tags=TAGS)
def defund(device_id: str, body: SignedTransferBody, state: State) -> Any:
    """Purse -> wallet: a defund transfer signed by the device (payee `wallet:<its wallet>`),
    adjudicated in the device's log; the wallet is credited with what the purse covers."""
    signed = body.model_dump(exclude_unset=True)
    result = state.uow.run(
        None,
        lambda s: funding.defund(s, state.ctx, device_id=device_id, signed_transfer=signed),
    )
    state.wake_worker()
    return result


@router.post("/v1/offline/devices/{device_id}/sync", tags=TAGS)
def sync(device_id: str, body: SignedSync, state: State) -> Any:
    """Upload a device's log (batch signed by the device): its transfers are adjudicated here,
    payments it received from our devices settled to its wallet, those from other operators'
    devices forwarded to them. Answers a signed ack and the central bank's signed revocation
    list (503 `offline_revocations_unavailable` if none can be had). Idempotent."""
    batch = body.batch.model_dump(exclude_unset=True)
    if batch["device"] != device_id:
        raise ValidationFailed("batch.device: must match the device in the path")
    device = state.uow.run(None, lambda s: devices.require_device(s, device_id))
    if not verify_json(device.public_key, batch, body.signature):
        raise rejected(kernel.OfflineRefusal(kernel.BAD_SIGNATURE, "the batch is not the device's"))
    revocations = latest_list(state.ctx, max_age=1.0)
    result = state.with_float(
        lambda s: offline_sync.sync_device(
            s,
            state.ctx,
            device_id=device_id,
            sent=batch["sent"],
            received=batch["received"],
            counter=batch["counter"],
            revocations=revocations,
        )
    )
    state.wake_worker()
    return result


@router.get("/v1/offline/devices/{device_id}", tags=TAGS)
def get_device(device_id: str, caller: Caller, state: State) -> Any:
    """The device as its operator knows it (its wallet's key or staff)."""
    require_role(caller, "wallet", "staff")
    wallet_id = caller.subject if caller.role == "wallet" else None
    return state.uow.run(
        caller, lambda s: devices.device_view(s, state.ctx, device_id, wallet_id=wallet_id)
    )


@router.get("/v1/offline/revocations", tags=TAGS)
def revocations(caller: Caller, state: State) -> Any:
    """The central bank's signed list of revoked devices (as handed over at sync)."""
    state.uow.run(caller, lambda s: None)  # records the envelope's nonce
    return latest_list(state.ctx, max_age=1.0)


@router.post("/v1/interop/offline/claims", tags=TAGS)
def claims(body: Claims, caller: Caller, state: State) -> Any:
    """Another operator forwards payments its devices received from our devices: each is
    adjudicated as if our device had synced it and settled to the payee's wallet there."""
    require_role(caller, "operator")
    payments = [p.model_dump(exclude_unset=True) for p in body.claims]
    result = state.with_float(
        lambda s: forwarding.accept_claims(s, state.ctx, caller=caller.subject, claims=payments),
        principal=caller,
    )
    state.wake_worker()
    return result


@router.get("/v1/admin/offline", tags=["staff", "offline"])
def totals(caller: Caller, state: State) -> Any:
    """Offline totals for the audit: devices, purses, transfers, claims being forwarded,
    double spends, fraud losses."""
    require_role(caller, "staff")
    return state.uow.run(caller, lambda s: devices.offline_totals(s, state.ctx))
