"""Offline devices: registration (the operator signs a device certificate carrying the limits of
the wallet's class), what a device's holder sees, and the operator's offline totals."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc import offline as kernel
from cbdc.crypto import b64d
from cbdc.errors import ServiceUnavailable, ValidationFailed
from cbdc.tokens import sign_document
from operators import repository as repo
from operators.context import OperatorContext
from operators.offline import repository as offline_repo
from operators.offline.errors import DeviceKeyTaken, NotYourDevice, UnknownDevice
from operators.wallets import limits, service

PURSE_KIND = "offline_purse"


def purse_code(device_id: str) -> str:
    return f"offline:{device_id}"


def operator_certificate(ctx: OperatorContext) -> dict[str, Any]:
    """The central bank's certificate of this operator (the root of every device chain)."""
    if ctx.certificate is None:
        try:
            entry = ctx.central_bank.operator(ctx.code)
        except Exception:
            entry = None
        if not entry:
            raise ServiceUnavailable("this operator's certificate cannot be obtained right now")
        ctx.certificate = {
            "document": entry["certificate"],
            "signature": entry["certificate_signature"],
        }
    return ctx.certificate


def require_device(
    session: Session, device_id: str, *, wallet_id: str | None = None, lock: bool = False
) -> Row[Any]:
    """The device; `wallet_id`: the caller's wallet, which must own it (None: staff, engine)."""
    device = offline_repo.get_device(session, device_id, lock=lock)
    if device is None:
        raise UnknownDevice(f"no offline device {device_id}")
    if wallet_id is not None and device.wallet_id != wallet_id:
        raise NotYourDevice(f"device {device_id} is registered to another wallet")
    return device


def _check_public_key(public_key: str) -> None:
    try:
        raw = b64d(public_key)
    except Exception:
        raw = b""
    if len(raw) != 32:
        raise ValidationFailed("public_key: an Ed25519 public key, 32 bytes base64")


def register_device(
    session: Session,
    ctx: OperatorContext,
    *,
    wallet_id: str,
    public_key: str,
    name: str,
    revocations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Register a device key to a wallet and certify it (the 201 body). The same key for the
    same wallet again answers the existing device (`replayed`). `revocations`: the central
    bank's signed list, handed over with the certificate (the API fetches it before its
    transaction) so that a new device refuses revoked payers before its first sync."""
    handed = {} if revocations is None else {"revocations": revocations}
    _check_public_key(public_key)
    wallet = service.require_wallet(session, ctx, wallet_id)
    limits.require_active(wallet)
    repo.lock_key(session, "offline-device-key", public_key)
    existing = offline_repo.device_by_key(session, public_key)
    if existing is not None:
        if existing.wallet_id != wallet_id:
            raise DeviceKeyTaken("this key is registered to another wallet")
        return {**_registration(session, ctx, existing), **handed, "replayed": True}
    now = ctx.now()
    device_id = kernel.new_device_id(ctx.code)
    document = kernel.device_certificate(
        device_id=device_id,
        public_key=public_key,
        operator=ctx.code,
        wallet_id=wallet_id,
        wallet_class=int(wallet.wallet_class),
        limits=ctx.policy.offline_limits(wallet.wallet_class),
        serial=uuid.uuid4().hex,
        issued_at=now,
    )
    signed = sign_document(ctx.key, document)
    account = ledger.ensure_account(session, code=purse_code(device_id), kind=PURSE_KIND)
    offline_repo.add_device(
        session,
        id=device_id,
        wallet_id=wallet_id,
        name=name,
        public_key=public_key,
        serial=document["serial"],
        certificate=document,
        certificate_signature=signed["signature"],
        account_id=account,
        created_at=now,
    )
    device = offline_repo.get_device(session, device_id)
    assert device is not None
    return {**_registration(session, ctx, device), **handed, "replayed": False}


def _registration(session: Session, ctx: OperatorContext, device: Row[Any]) -> dict[str, Any]:
    return {
        "device_id": device.id,
        "wallet_id": device.wallet_id,
        "name": device.name,
        "certificate": {
            "document": device.certificate,
            "signature": device.certificate_signature,
        },
        "operator_certificate": operator_certificate(ctx),
        "central_bank_public_key": ctx.central_bank_public_key,
        "limits": device.certificate["limits"],
        "purse_balance": repo.account_balance(session, device.account_id),
        "status": device.status,
    }


def device_view(
    session: Session, ctx: OperatorContext, device_id: str, *, wallet_id: str | None = None
) -> dict[str, Any]:
    """A device as its operator knows it: status, certificate, purse, fundings, last sync, the
    transfers adjudicated here, the claims forwarded for it, its double spends."""
    device = require_device(session, device_id, wallet_id=wallet_id)
    return {
        "device_id": device.id,
        "wallet_id": device.wallet_id,
        "name": device.name,
        "status": device.status,
        "revoked_at": device.revoked_at.isoformat() if device.revoked_at else None,
        "revoke_reason": device.revoke_reason,
        "certificate": {
            "document": device.certificate,
            "signature": device.certificate_signature,
        },
        "limits": device.certificate["limits"],
        "purse_balance": repo.account_balance(session, device.account_id),
        "fundings": offline_repo.fundings_of(session, device.id),
        "last_sync_at": device.last_sync_at.isoformat() if device.last_sync_at else None,
        "transfers": offline_repo.transfers_of(session, device.id),
        "claims": offline_repo.claims_of(session, device.id),
        "double_spends": offline_repo.double_spends_of(session, device.id),
    }


def offline_totals(session: Session, ctx: OperatorContext) -> dict[str, Any]:
    """Staff totals for the audit: purses, adjudicated transfers, claims being forwarded,
    double spends, and the fraud-loss memorandum account."""
    totals = offline_repo.totals(session)
    return {
        "operator": ctx.code,
        **totals,
        "fraud_losses": repo.account_balance(session, ctx.account("fraud_losses")),
    }
