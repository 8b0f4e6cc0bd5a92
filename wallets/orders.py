"""Signed customer orders. The nonce is random per order: it is the replay protection and the
idempotency key (re-sending the same signed order returns the first outcome)."""

from __future__ import annotations

import secrets
from typing import Any

from cbdc.clock import iso, utcnow
from cbdc.crypto import SigningKey


def _nonce() -> str:
    return secrets.token_hex(16)


def payment_order(
    *,
    payer: str,
    payee: str,
    amount: int,
    currency: str,
    memo: str | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    order: dict[str, Any] = {
        "type": "payment",
        "payer": payer,
        "payee": payee,
        "amount": amount,
        "currency": currency,
        "nonce": nonce or _nonce(),
        "created_at": iso(utcnow()),
    }
    if memo is not None:
        order["memo"] = memo
    return order


def load_order(*, wallet: str, amount: int, currency: str, nonce: str | None = None) -> dict:
    return {
        "type": "load",
        "wallet": wallet,
        "amount": amount,
        "currency": currency,
        "nonce": nonce or _nonce(),
        "created_at": iso(utcnow()),
    }


def unload_order(*, wallet: str, amount: int, currency: str, nonce: str | None = None) -> dict:
    return {
        "type": "unload",
        "wallet": wallet,
        "amount": amount,
        "currency": currency,
        "nonce": nonce or _nonce(),
        "created_at": iso(utcnow()),
    }


def cash_withdrawal_order(
    *, wallet: str, amount: int, currency: str, nonce: str | None = None
) -> dict[str, Any]:
    """The holder's consent to take `amount` out of `wallet` in banknotes at the operator's
    counter (staff submit it: `POST /v1/admin/wallets/{id}/cash-withdraw`)."""
    return {
        "type": "cash_withdrawal",
        "wallet": wallet,
        "amount": amount,
        "currency": currency,
        "nonce": nonce or _nonce(),
        "created_at": iso(utcnow()),
    }


def offline_device_order(
    *, wallet: str, public_key: str, name: str, currency: str, nonce: str | None = None
) -> dict[str, Any]:
    """Register an offline device's key to `wallet` (wallets/offline/client.py)."""
    return {
        "type": "offline_device",
        "wallet": wallet,
        "public_key": public_key,
        "name": name,
        "currency": currency,
        "nonce": nonce or _nonce(),
        "created_at": iso(utcnow()),
    }


def offline_fund_order(
    *, wallet: str, device: str, amount: int, currency: str, nonce: str | None = None
) -> dict[str, Any]:
    """Move `amount` from `wallet` into `device`'s purse (wallets/offline/client.py)."""
    return {
        "type": "offline_fund",
        "wallet": wallet,
        "device": device,
        "amount": amount,
        "currency": currency,
        "nonce": nonce or _nonce(),
        "created_at": iso(utcnow()),
    }


def escrow_order(
    *,
    payer: str,
    payee: str,
    amount: int,
    currency: str,
    deadline: str,
    arbiter: str | None = None,
    memo: str | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """Lock `amount` of `payer` for `payee` until `deadline` (ISO 8601 with zone); released by
    the payer, or by `arbiter` (a wallet at the payer's operator) when there is one."""
    order: dict[str, Any] = {
        "type": "escrow",
        "payer": payer,
        "payee": payee,
        "amount": amount,
        "currency": currency,
        "deadline": deadline,
        "nonce": nonce or _nonce(),
        "created_at": iso(utcnow()),
    }
    if arbiter is not None:
        order["arbiter"] = arbiter
    if memo is not None:
        order["memo"] = memo
    return order


def escrow_release_order(
    *, escrow: str, amount: int, by: str, nonce: str | None = None
) -> dict[str, Any]:
    """Release `amount` of the escrow to its payee, signed by `by` (arbiter, or payer)."""
    return {
        "type": "escrow_release",
        "escrow": escrow,
        "amount": amount,
        "by": by,
        "nonce": nonce or _nonce(),
        "created_at": iso(utcnow()),
    }


def escrow_refund_order(*, escrow: str, by: str, nonce: str | None = None) -> dict[str, Any]:
    """Give what remains in the escrow back to its payer, signed by `by` (arbiter, or payee)."""
    return {
        "type": "escrow_refund",
        "escrow": escrow,
        "by": by,
        "nonce": nonce or _nonce(),
        "created_at": iso(utcnow()),
    }


def sign_order(key: SigningKey, order: dict[str, Any]) -> dict[str, Any]:
    return {"order": order, "signature": key.sign_json(order)}


def schedule_order(
    *,
    payer: str,
    payee: str,
    amount: int,
    currency: str,
    first_at: str,
    every: int | None = None,
    count: int = 1,
    memo: str | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """Pay `payee` `amount` at `first_at` (ISO 8601 with zone), then every `every` seconds
    (None: once), `count` times at most (`POST /v1/schedules`)."""
    order: dict[str, Any] = {
        "type": "schedule",
        "payer": payer,
        "payee": payee,
        "amount": amount,
        "currency": currency,
        "first_at": first_at,
        "every": every,
        "count": count,
        "nonce": nonce or _nonce(),
        "created_at": iso(utcnow()),
    }
    if memo is not None:
        order["memo"] = memo
    return order


def programme_order(
    *,
    issuer: str,
    name: str,
    categories: list[str],
    per_holder: int,
    expires_at: str,
    currency: str,
    nonce: str | None = None,
) -> dict[str, Any]:
    """A programme of purpose-bound vouchers of `issuer`: spendable at merchants of
    `categories`, at most `per_holder` granted to each holder, until `expires_at`."""
    return {
        "type": "programme",
        "issuer": issuer,
        "name": name,
        "categories": list(categories),
        "per_holder": per_holder,
        "expires_at": expires_at,
        "currency": currency,
        "nonce": nonce or _nonce(),
        "created_at": iso(utcnow()),
    }


def voucher_grant_order(
    *, programme: str, holder: str, amount: int, nonce: str | None = None
) -> dict[str, Any]:
    """Grant `amount` of the programme's vouchers to `holder` (signed by the issuer)."""
    return {
        "type": "voucher_grant",
        "programme": programme,
        "holder": holder,
        "amount": amount,
        "nonce": nonce or _nonce(),
        "created_at": iso(utcnow()),
    }


def voucher_payment_order(
    *,
    payer: str,
    payee: str,
    amount: int,
    programme: str,
    currency: str,
    memo: str | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """Pay an eligible merchant `payee` from the payer's voucher of `programme`."""
    order: dict[str, Any] = {
        "type": "voucher_payment",
        "payer": payer,
        "payee": payee,
        "amount": amount,
        "programme": programme,
        "currency": currency,
        "nonce": nonce or _nonce(),
        "created_at": iso(utcnow()),
    }
    if memo is not None:
        order["memo"] = memo
    return order
