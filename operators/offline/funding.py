"""Funding and defunding a device's purse (online): value moves between the wallet and the
purse account `offline:<device>` as one balanced entry; each funding gets a record signed by
this operator (seq 1, 2, ... per device) that the secure element applies exactly once."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import null
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc import offline as kernel
from cbdc.errors import IdempotencyMismatch, InsufficientFunds, ValidationFailed
from cbdc.tokens import sign_document
from operators import repository as repo
from operators.context import OperatorContext
from operators.models import Order
from operators.offline import repository as offline_repo
from operators.offline.adjudication import adjudicate
from operators.offline.devices import require_device
from operators.offline.errors import DeviceRevoked, PurseCapExceeded, rejected
from operators.payments.orders import check_replay
from operators.wallets import limits
from operators.wallets import repository as wallet_repo


def fund(
    session: Session,
    ctx: OperatorContext,
    *,
    device_id: str,
    amount: int,
    nonce: str,
    wallet_id: str | None = None,
    order: dict[str, Any] | None = None,
    signature: str | None = None,
    order_hash: str | None = None,
) -> dict[str, Any]:
    """Wallet -> purse. `wallet_id`: the caller's wallet (it must own the device; None for staff
    and the scenario engine); `order`/`signature`/`order_hash`: the signed order the API
    checked, kept with the funding's order (None: placed by the scenario engine). The nonce is
    the idempotency key: a replay answers the same signed record."""
    if not isinstance(amount, int) or amount <= 0:
        raise ValidationFailed("amount: a positive integer of minor units")
    device = require_device(session, device_id, wallet_id=wallet_id, lock=True)
    wallet = wallet_repo.get_wallet(session, device.wallet_id)
    assert wallet is not None
    balances = ledger.lock_accounts(session, [wallet.account_id, device.account_id])
    previous = offline_repo.funding_by_nonce(session, device.id, nonce)
    if previous is not None:
        if order_hash is not None:
            stored = wallet_repo.get_order(session, previous.order_id)
            assert stored is not None
            check_replay(stored, order_hash)
        return _answer(
            session, wallet.account_id, device, previous.record, previous.signature, True
        )
    other = wallet_repo.find_order(session, wallet.id, nonce)
    if other is not None:
        if order_hash is not None:
            check_replay(other, order_hash)  # the same order refused before: that refusal
        raise IdempotencyMismatch("this nonce was already used by another order of the wallet")
    if device.status != "active":
        raise DeviceRevoked(f"device {device.id} is revoked")
    session.refresh(wallet)
    limits.require_active(wallet)
    if balances[wallet.account_id] < amount:
        raise InsufficientFunds(
            f"wallet balance {limits.fmt_money(ctx, balances[wallet.account_id])} "
            f"does not cover {limits.fmt_money(ctx, amount)}"
        )
    cap = kernel.limits_of(device.certificate).purse_cap
    if balances[device.account_id] + amount > cap:
        raise PurseCapExceeded(
            f"purse {limits.fmt_money(ctx, balances[device.account_id])} + "
            f"{limits.fmt_money(ctx, amount)} would exceed its cap {limits.fmt_money(ctx, cap)}",
            limit=cap,
        )
    now, order_id, seq = ctx.now(), uuid.uuid4(), int(device.fundings) + 1
    record = kernel.funding_record(
        device=device.id, seq=seq, amount=amount, currency=ctx.currency, at=now, order=str(order_id)
    )
    signed = sign_document(ctx.key, record)
    entry = ledger.post(
        session,
        at=now,
        kind="offline_fund",
        reference=str(order_id),
        legs=[(wallet.account_id, -amount), (device.account_id, amount)],
    )
    wallet_repo.add_order(
        session,
        Order(
            id=order_id,
            wallet_id=wallet.id,
            nonce=nonce,
            kind="offline_fund",
            amount=amount,
            counterparty=device.id,
            body=order if order is not None else null(),
            signature=signature if order is not None else None,
            order_hash=order_hash if order is not None else None,
            status="completed",
            entry_id=entry,
            created_at=now,
            updated_at=now,
        ),
    )
    offline_repo.add_funding(
        session,
        device_id=device.id,
        seq=seq,
        nonce=nonce,
        amount=amount,
        record=record,
        signature=signed["signature"],
        order_id=order_id,
        created_at=now,
    )
    return _answer(session, wallet.account_id, device, record, signed["signature"], False)


def _answer(
    session: Session,
    wallet_account: int,
    device: Any,
    record: dict[str, Any],
    signature: str,
    replayed: bool,
) -> dict[str, Any]:
    return {
        "funding": {"document": record, "signature": signature},
        "purse_balance": repo.account_balance(session, device.account_id),
        "wallet_balance": repo.account_balance(session, wallet_account),
        "replayed": replayed,
    }


def defund(
    session: Session,
    ctx: OperatorContext,
    *,
    device_id: str,
    signed_transfer: dict[str, Any],
    wallet_id: str | None = None,
) -> dict[str, Any]:
    """Purse -> wallet: a defund transfer the device signed (payee `wallet:<own wallet>`),
    adjudicated in the device's log like any transfer (so a rolled-back device that defunds is
    caught): the wallet is credited with what the purse covers, never more."""
    device = require_device(session, device_id, wallet_id=wallet_id)
    document = signed_transfer.get("transfer") if isinstance(signed_transfer, dict) else None
    if not isinstance(document, dict) or document.get("payer") != device.id:
        raise rejected(kernel.OfflineRefusal(kernel.MALFORMED, "not a transfer of this device"))
    if not kernel.is_defund(document):
        raise rejected(kernel.OfflineRefusal(kernel.WRONG_PAYEE, "a defund's payee is wallet:<id>"))
    result = adjudicate(session, ctx, payment_or_signed_transfer=signed_transfer, source="defund")
    if result["outcome"] == "refused":
        raise rejected(kernel.OfflineRefusal(result["code"], result["detail"]))
    credited = result.get("credited")
    if credited is None:  # a duplicate: what the first defund credited
        order = result.get("order_id")
        stored = wallet_repo.get_order(session, uuid.UUID(order)) if order else None
        credited = stored.amount if stored is not None else 0
    wallet = wallet_repo.get_wallet(session, device.wallet_id)
    assert wallet is not None
    return {
        "device_id": device.id,
        "outcome": result["outcome"],
        "hash": result["hash"],
        "credited": credited,
        "purse_balance": repo.account_balance(session, device.account_id),
        "wallet_balance": repo.account_balance(session, wallet.account_id),
        "order_id": result.get("order_id"),
    }
