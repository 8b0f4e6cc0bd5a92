"""Demo deposits: a wallet credits its holder's simulated bank deposit itself, so a visitor of
the web wallet can try loads and payments without a clerk. The booking is staff's deposit
credit (`operators.exchange.service.credit_deposit`, journal kind `deposit_credit`), with the
signed envelope's nonce as its reference and idempotency key."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from operators.context import OperatorContext
from operators.exchange import service as exchange
from operators.wallets import service as wallets

# Kept apart from the Idempotency-Keys staff choose, which share the table with these.
IDEMPOTENCY_PREFIX = "demo-deposit:"


def credit_demo_deposit(
    session: Session,
    ctx: OperatorContext,
    *,
    wallet_id: str,
    amount: int,
    key_id: str,
    nonce: str,
    request_hash: str,
) -> dict[str, Any]:
    """Credit `amount` (minor units) to the deposit of the holder of `wallet_id`."""
    wallet = wallets.require_wallet(session, ctx, wallet_id)
    credited = exchange.credit_deposit(
        session,
        ctx,
        customer_id=wallet.customer_id,
        amount=amount,
        key_id=key_id,
        idem_key=IDEMPOTENCY_PREFIX + nonce,
        request_hash=request_hash,
    )
    return {
        "wallet_id": wallet.id,
        "customer_id": wallet.customer_id,
        "amount": amount,
        "deposit_balance": credited["deposit_balance"],
    }
