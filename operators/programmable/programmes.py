"""Programmes of purpose-bound, expiring vouchers (docs/programmable.md).

An issuer wallet (an agency, a merchant scheme) creates a programme with its signed order: the
merchant categories its vouchers may be spent at, a cumulative cap per holder, an expiry. It
then grants vouchers with signed orders: issuer wallet -> the holder's voucher account of that
programme (one ledger account per (programme, holder), kind `voucher`, never negative, counted
as digital currency in the vault invariant; its balance is granted - spent - returned).
Holders are wallets of this operator (their keys sign the voucher payments here). Grants do not
count against the issuer's limits (the value stays earmarked and comes back at expiry; each
spend counts against the holder's limits as a payment).

Every change to a programme's money takes the programme row first: grants and the expiry sweep
FOR UPDATE, payments FOR SHARE (many at once; the sweep skips a programme a payment holds and
takes it at its next pass), then the voucher row, then the ledger accounts in ascending order.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.clock import iso, parse_iso
from cbdc.errors import IdempotencyMismatch, InsufficientFunds, ValidationFailed
from cbdc.merchants import check_categories
from operators import repository as repo
from operators.context import OperatorContext
from operators.errors import InvalidWalletId, SelfPayment
from operators.payments.orders import check_currency, check_signed_order
from operators.programmable import voucher_repository as vrepo
from operators.programmable.voucher_errors import (
    BadExpiry,
    HolderNotHere,
    NotTheIssuer,
    ProgrammeExpired,
    UnknownProgramme,
    VoucherCapExceeded,
)
from operators.wallets import limits
from operators.wallets import repository as wallet_repo
from operators.wallets.service import require_wallet

MAX_EXPIRY = timedelta(days=366)


def create(
    session: Session, ctx: OperatorContext, *, order: dict[str, Any], signature: str
) -> dict[str, Any]:
    """A new programme of the issuer (idempotent on the issuer's nonce: `replayed`)."""
    now = ctx.now()
    issuer = require_wallet(session, ctx, order["issuer"])
    check_currency(ctx, order)
    order_hash = check_signed_order(issuer, order, signature, now=now)
    wallet_repo.get_wallet(session, issuer.id, lock=True)  # one creation per nonce at a time
    previous = vrepo.programme_by_nonce(session, issuer.id, order["nonce"])
    if previous is not None:
        if previous["order_hash"] != order_hash:
            raise IdempotencyMismatch("this nonce was already used by a different order")
        return {**view(ctx, previous), "replayed": True}
    limits.require_active(issuer, "issuer wallet")
    if not order["name"].strip():
        raise ValidationFailed("order.name: must not be blank")
    categories = check_categories(order["categories"], field="order.categories")
    expires_at = _expiry(order["expires_at"], now)
    programme_id = uuid.uuid4()
    vrepo.add_programme(
        session,
        id=programme_id,
        issuer=issuer.id,
        name=order["name"],
        categories=categories,
        per_holder=order["per_holder"],
        expires_at=expires_at,
        nonce=order["nonce"],
        body=order,
        signature=signature,
        order_hash=order_hash,
        created_at=now,
    )
    created = vrepo.get_programme(session, programme_id)
    assert created is not None
    return {**view(ctx, created), "replayed": False}


def grant(
    session: Session,
    ctx: OperatorContext,
    *,
    programme_id: str,
    order: dict[str, Any],
    signature: str,
) -> dict[str, Any]:
    """Issuer wallet -> the holder's voucher account; the programme's view with `grant`."""
    now = ctx.now()
    programme = locked(session, programme_id, lock="update")
    issuer = wallet_repo.get_wallet(session, programme["issuer"])
    assert issuer is not None
    order_hash = check_signed_order(issuer, order, signature, now=now)
    previous = vrepo.grant_event(session, programme["id"], order["nonce"])
    if previous is not None:
        if previous["order_hash"] != order_hash:
            raise IdempotencyMismatch("this nonce was already used by a different order")
        return {**view(ctx, programme), "replayed": True}
    if programme["status"] != "active" or now >= programme["expires_at"]:
        raise ProgrammeExpired(
            f"programme {programme['id']} expired at {iso(programme['expires_at'])}"
        )
    holder_id, amount = order["holder"], order["amount"]
    if not is_valid_wallet_id(holder_id):
        raise InvalidWalletId(f"holder {holder_id!r} is not a valid wallet id")
    if routing_code(holder_id) != ctx.code:
        raise HolderNotHere(
            f"holder {holder_id} is at operator {routing_code(holder_id)}: vouchers are held "
            f"at the programme's operator {ctx.code} (its key signs the voucher payments here)"
        )
    if holder_id == issuer.id:
        raise SelfPayment("the issuer cannot grant vouchers to itself")
    holder = require_wallet(session, ctx, holder_id)
    limits.require_active(holder, "holder wallet")
    limits.require_active(issuer, "issuer wallet")
    voucher = vrepo.voucher(session, programme["id"], holder.id, lock=True)
    if voucher is None:
        account = repo.add_numbered_account(session, prefix="voucher", kind="voucher")
        vrepo.add_voucher(session, programme["id"], holder.id, account)
        voucher = vrepo.voucher(session, programme["id"], holder.id, lock=True)
        assert voucher is not None
    if voucher["granted"] + amount > programme["per_holder"]:
        raise VoucherCapExceeded(
            f"holder {holder.id} was granted {limits.fmt_money(ctx, voucher['granted'])} of "
            f"the cap {limits.fmt_money(ctx, programme['per_holder'])}"
        )
    balances = ledger.lock_accounts(session, [issuer.account_id, voucher["account_id"]])
    if balances[issuer.account_id] < amount:
        raise InsufficientFunds(
            f"issuer balance {limits.fmt_money(ctx, balances[issuer.account_id])} "
            f"does not cover {limits.fmt_money(ctx, amount)}"
        )
    entry = ledger.post(
        session,
        at=now,
        kind="voucher_grant",
        reference=str(programme["id"]),
        legs=[(issuer.account_id, -amount), (voucher["account_id"], amount)],
    )
    vrepo.add_to(session, programme["id"], holder.id, granted=amount)
    vrepo.add_event(
        session,
        programme_id=programme["id"],
        holder=holder.id,
        kind="grant",
        amount=amount,
        nonce=order["nonce"],
        body=order,
        signature=signature,
        order_hash=order_hash,
        entry_id=entry,
        created_at=now,
    )
    after = vrepo.get_programme(session, programme["id"])
    assert after is not None
    return {
        **view(ctx, after),
        "grant": {
            "holder": holder.id,
            "amount": amount,
            "holder_granted": voucher["granted"] + amount,
        },
        "replayed": False,
    }


def expire(session: Session, ctx: OperatorContext, programme: dict[str, Any], now: datetime) -> int:
    """Every unspent voucher of the (locked, active, due) programme back to the issuer wallet;
    the programme `expired`. The value returned."""
    issuer = wallet_repo.get_wallet(session, programme["issuer"])
    assert issuer is not None
    total = 0
    for v in vrepo.vouchers_of(session, programme["id"]):
        vrepo.voucher(session, programme["id"], v["holder"], lock=True)
        balances = ledger.lock_accounts(session, [v["account_id"], issuer.account_id])
        left = int(balances[v["account_id"]])
        if left <= 0:
            continue
        entry = ledger.post(
            session,
            at=now,
            kind="voucher_expiry",
            reference=str(programme["id"]),
            legs=[(v["account_id"], -left), (issuer.account_id, left)],
        )
        vrepo.add_to(session, programme["id"], v["holder"], returned=left)
        vrepo.add_event(
            session,
            programme_id=programme["id"],
            holder=v["holder"],
            kind="expiry",
            amount=left,
            entry_id=entry,
            created_at=now,
        )
        total += left
    vrepo.mark_expired(session, programme["id"], now)
    return total


def locked(session: Session, programme_id: str | uuid.UUID, *, lock: str) -> dict[str, Any]:
    programme = vrepo.get_programme(session, parse_id(programme_id), lock=lock)
    if programme is None:
        raise UnknownProgramme(f"no programme {programme_id}")
    return programme


def parse_id(programme_id: str | uuid.UUID) -> uuid.UUID:
    if isinstance(programme_id, uuid.UUID):
        return programme_id
    try:
        return uuid.UUID(programme_id)
    except ValueError:
        raise ValidationFailed("programme id: must be a UUID") from None


def view(ctx: OperatorContext, p: dict[str, Any]) -> dict[str, Any]:
    outstanding = int(p["granted"] - p["spent"] - p["returned"])
    return {
        "programme_id": str(p["id"]),
        "issuer": p["issuer"],
        "name": p["name"],
        "categories": list(p["categories"]),
        "per_holder": int(p["per_holder"]),
        "currency": ctx.currency,
        "expires_at": iso(p["expires_at"]),
        "status": p["status"],
        "granted": int(p["granted"]),
        "spent": int(p["spent"]),
        "returned": int(p["returned"]),
        "outstanding": outstanding,
        "created_at": iso(p["created_at"]),
        "expired_at": iso(p["expired_at"]) if p["expired_at"] else None,
    }


def programme_view(
    session: Session, ctx: OperatorContext, programme_id: str, *, wallet_id: str | None
) -> dict[str, Any]:
    """The programme with its totals and holders, for its issuer or staff (None); a holder
    sees the programme and its own voucher only."""
    programme = vrepo.get_programme(session, parse_id(programme_id))
    if programme is None:
        raise UnknownProgramme(f"no programme {programme_id}")
    vouchers = vrepo.vouchers_of(session, programme["id"])
    if wallet_id is not None and wallet_id != programme["issuer"]:
        vouchers = [v for v in vouchers if v["holder"] == wallet_id]
        if not vouchers:
            raise NotTheIssuer("only the programme's issuer (or a holder) may see it")
    holders = [
        {
            "holder": v["holder"],
            "granted": int(v["granted"]),
            "spent": int(v["spent"]),
            "returned": int(v["returned"]),
            "balance": int(v["balance"]),
        }
        for v in vouchers
    ]
    return {**view(ctx, programme), "holders_count": len(holders), "holders": holders}


def _expiry(value: str, now: datetime) -> datetime:
    try:
        expires_at = parse_iso(value)
    except ValueError:
        raise ValidationFailed("order.expires_at: must be ISO 8601 with a time zone") from None
    if expires_at <= now:
        raise BadExpiry("order.expires_at: must be in the future")
    if expires_at > now + MAX_EXPIRY:
        raise BadExpiry(f"order.expires_at: at most {MAX_EXPIRY.days} days ahead")
    return expires_at
