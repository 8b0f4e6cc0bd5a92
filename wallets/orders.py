"""Signed customer orders. The nonce is random per order: it is the replay protection and the
idempotency key (re-sending the same signed order returns the first outcome)."""

from __future__ import annotations

import secrets
from typing import Any

from cbdc.clock import iso, utcnow
from cbdc.crypto import SigningKey


def _nonce() -> str:
    return secrets.token_hex(16)


def _order(kind: str, nonce: str | None, fields: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """`type`, the fields, `nonce` (random when not given) and `created_at`, then each of
    `optional` (in the order given) that is not None."""
    order: dict[str, Any] = {
        "type": kind,
        **fields,
        "nonce": nonce or _nonce(),
        "created_at": iso(utcnow()),
    }
    order.update((name, value) for name, value in optional.items() if value is not None)
    return order


def payment_order(
    *,
    payer: str,
    payee: str,
    amount: int,
    currency: str,
    memo: str | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    return _order(
        "payment",
        nonce,
        dict(payer=payer, payee=payee, amount=amount, currency=currency),
        memo=memo,
    )


def load_order(*, wallet: str, amount: int, currency: str, nonce: str | None = None) -> dict:
    return _order("load", nonce, dict(wallet=wallet, amount=amount, currency=currency))


def unload_order(*, wallet: str, amount: int, currency: str, nonce: str | None = None) -> dict:
    return _order("unload", nonce, dict(wallet=wallet, amount=amount, currency=currency))


def cash_withdrawal_order(
    *, wallet: str, amount: int, currency: str, nonce: str | None = None
) -> dict[str, Any]:
    """The holder's consent to take `amount` out of `wallet` in banknotes at the operator's
    counter (staff submit it: `POST /v1/admin/wallets/{id}/cash-withdraw`)."""
    return _order("cash_withdrawal", nonce, dict(wallet=wallet, amount=amount, currency=currency))


def offline_device_order(
    *, wallet: str, public_key: str, name: str, currency: str, nonce: str | None = None
) -> dict[str, Any]:
    """Register an offline device's key to `wallet` (wallets/offline/client.py)."""
    return _order(
        "offline_device",
        nonce,
        dict(wallet=wallet, public_key=public_key, name=name, currency=currency),
    )


def offline_fund_order(
    *, wallet: str, device: str, amount: int, currency: str, nonce: str | None = None
) -> dict[str, Any]:
    """Move `amount` from `wallet` into `device`'s purse (wallets/offline/client.py)."""
    return _order(
        "offline_fund", nonce, dict(wallet=wallet, device=device, amount=amount, currency=currency)
    )


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
    return _order(
        "escrow",
        nonce,
        dict(payer=payer, payee=payee, amount=amount, currency=currency, deadline=deadline),
        arbiter=arbiter,
        memo=memo,
    )


def escrow_release_order(
    *, escrow: str, amount: int, by: str, nonce: str | None = None
) -> dict[str, Any]:
    """Release `amount` of the escrow to its payee, signed by `by` (arbiter, or payer)."""
    return _order("escrow_release", nonce, dict(escrow=escrow, amount=amount, by=by))


def escrow_refund_order(*, escrow: str, by: str, nonce: str | None = None) -> dict[str, Any]:
    """Give what remains in the escrow back to its payer, signed by `by` (arbiter, or payee)."""
    return _order("escrow_refund", nonce, dict(escrow=escrow, by=by))


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
    return _order(
        "schedule",
        nonce,
        dict(
            payer=payer,
            payee=payee,
            amount=amount,
            currency=currency,
            first_at=first_at,
            every=every,
            count=count,
        ),
        memo=memo,
    )


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
    return _order(
        "programme",
        nonce,
        dict(
            issuer=issuer,
            name=name,
            categories=list(categories),
            per_holder=per_holder,
            expires_at=expires_at,
            currency=currency,
        ),
    )


def voucher_grant_order(
    *, programme: str, holder: str, amount: int, nonce: str | None = None
) -> dict[str, Any]:
    """Grant `amount` of the programme's vouchers to `holder` (signed by the issuer)."""
    return _order("voucher_grant", nonce, dict(programme=programme, holder=holder, amount=amount))


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
    return _order(
        "voucher_payment",
        nonce,
        dict(payer=payer, payee=payee, amount=amount, programme=programme, currency=currency),
        memo=memo,
    )
