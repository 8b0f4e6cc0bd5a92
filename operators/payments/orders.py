"""Signed customer orders (payments, loads, unloads): signature, currency, time window and
replay checks, refused orders kept by nonce, and payment receipts and status.

Orders are signed by the wallet's key; their nonce is unique per wallet, which makes a replayed
order return the original outcome instead of moving money twice."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.clock import iso, parse_iso
from cbdc.crypto import canonical_json, sha256_hex, verify_json
from cbdc.errors import BadSignature, IdempotencyMismatch, ValidationFailed
from cbdc.tokens import sign_document
from operators import repository as repo
from operators.context import OperatorContext
from operators.errors import (
    CurrencyMismatch,
    NonceReserved,
    OrderExpired,
    OrderRefused,
    UnknownPayment,
)
from operators.models import Order, Wallet
from operators.wallets import repository as wallet_repo

ORDER_MAX_AGE = timedelta(minutes=10)


ORDER_MAX_SKEW = timedelta(minutes=5)
# Nonces the operator gives orders of its own making, in the payer's nonce space: the n-th
# execution of a schedule (`sched:<schedule id>:<n>`, operators/programmable/schedules_run)
# and an escrow release's payment (`escrow:<escrow id>:<signer>:<nonce>`). A signed order
# never carries one: a payer's order under `sched:<id>:<n>` would take that execution's nonce
# (the execution refused, or linked to the payer's own order).
RESERVED_NONCE_PREFIXES = ("sched:", "escrow:")


def is_reserved_nonce(nonce: object) -> bool:
    return isinstance(nonce, str) and nonce.startswith(RESERVED_NONCE_PREFIXES)


def check_signed_order(
    wallet: Wallet, order: dict[str, Any], signature: str, *, now: datetime
) -> str:
    """The order's hash, once its signature verifies and its `created_at` is within the
    accepted window around `now` (the context's clock), and its nonce is not one the operator
    reserves for orders of its own (422 `nonce_reserved`)."""
    if is_reserved_nonce(order.get("nonce")):
        raise NonceReserved(
            f"order.nonce: nonces starting with {' or '.join(RESERVED_NONCE_PREFIXES)} are "
            "reserved for the operator's own orders"
        )
    if not verify_json(wallet.public_key, order, signature):
        raise BadSignature("order signature does not verify against the wallet's key")
    try:
        created = parse_iso(order["created_at"])
    except (ValueError, KeyError):
        raise ValidationFailed("order.created_at: must be ISO 8601 with a time zone") from None
    if created < now - ORDER_MAX_AGE or created > now + ORDER_MAX_SKEW:
        raise OrderExpired("order.created_at is outside the accepted window")
    return sha256_hex(canonical_json(order))


def check_currency(ctx: OperatorContext, order: dict[str, Any]) -> None:
    if order["currency"] != ctx.currency:
        raise CurrencyMismatch(f"this network's currency is {ctx.currency}")


def check_replay(previous: Order, order_hash: str) -> None:
    if previous.order_hash != order_hash:
        raise IdempotencyMismatch("this nonce was already used by a different order")
    if previous.status == "failed" and previous.entry_id is None:
        raise OrderRefused(
            f"this order was refused ({previous.failure}); sign a new order to try again",
            failure=previous.failure,
        )


def payment_receipt(ctx: OperatorContext, order: Order) -> dict[str, Any]:
    document = {
        "type": "payment-receipt",
        "payment_id": str(order.id),
        "operator": ctx.code,
        "payer": order.wallet_id,
        "payee": order.counterparty,
        "amount": order.amount,
        "currency": ctx.currency,
        "nonce": order.nonce,
        "route": "intra" if routing_code(order.counterparty or "") == ctx.code else "cross",
        "status": order.status,
        "failure": order.failure,
        "accepted_at": iso(order.created_at),
    }
    return {**document, "receipt": sign_document(ctx.key, document)}


def payment_status(
    session: Session, ctx: OperatorContext, *, payment_id: str, wallet_id: str | None
) -> dict[str, Any]:
    try:
        order = wallet_repo.get_order(session, uuid.UUID(payment_id))
    except ValueError:
        raise ValidationFailed("payment_id must be a UUID") from None
    if order is None or order.kind != "payment":
        raise UnknownPayment(f"no payment {payment_id}")
    if wallet_id is not None and wallet_id != order.wallet_id:
        raise UnknownPayment(f"no payment {payment_id}")  # do not reveal others' payments
    return payment_receipt(ctx, order)


# Where a refused order's money would have gone (a payment: its payee), as a completed one says.
_COUNTERPARTY = {"cash_withdrawal": "cash"}
# Orders whose wallet is their `payer` (and whose counterparty their `payee`); the others name
# their `wallet`. (An escrow: operators/programmable.)
PAYER_KINDS = ("payment", "escrow")


def record_refused_order(
    session: Session,
    ctx: OperatorContext,
    *,
    kind: str,
    order: dict[str, Any],
    signature: str,
    failure: str,
) -> None:
    """Keep a refused order's nonce, so the same signed order can never succeed later (e.g.
    replayed once the payer has funds): a resend returns this refusal."""
    if is_reserved_nonce(order.get("nonce")):
        return  # never kept: it would take the nonce of the operator's own order
    wallet_id = order.get("payer") if kind in PAYER_KINDS else order.get("wallet")
    if not isinstance(wallet_id, str) or not is_valid_wallet_id(wallet_id):
        return
    wallet = wallet_repo.get_wallet(session, wallet_id)
    if wallet is None or not verify_json(wallet.public_key, order, signature):
        return
    repo.lock_key(session, f"order-nonce:{wallet_id}", str(order.get("nonce")))
    if wallet_repo.find_order(session, wallet_id, order["nonce"]) is not None:
        return  # the same refused order, sent twice at once, is recorded once
    wallet_repo.add_order(
        session,
        Order(
            id=uuid.uuid4(),
            wallet_id=wallet_id,
            nonce=order["nonce"],
            kind=kind,
            amount=order["amount"],
            counterparty=_COUNTERPARTY.get(kind, "deposit")
            if kind not in PAYER_KINDS
            else order.get("payee"),
            body=order,
            signature=signature,
            order_hash=sha256_hex(canonical_json(order)),
            status="failed",
            failure=failure,
            entry_id=None,
            created_at=ctx.now(),
            updated_at=ctx.now(),
        ),
    )
