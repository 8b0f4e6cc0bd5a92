"""Wire types of escrow: the signed orders that create, release and refund one. Strict like
every signed body (`operators.schemas`): the signature covers the canonical JSON of `order`
exactly as sent."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from operators.offline.schemas import CurrencyField, SignatureField
from operators.schemas import AmountField, NonceField, Strict, WalletIdField

EscrowIdField = Field(min_length=36, max_length=36, description="the escrow's UUID")
TimeField = Field(min_length=10, max_length=40, description="ISO 8601 with time zone")


class EscrowOrder(Strict):
    type: Literal["escrow"]
    payer: str = WalletIdField
    payee: str = WalletIdField
    amount: int = AmountField
    currency: str = CurrencyField
    deadline: str = TimeField
    arbiter: str | None = Field(default=None, min_length=20, max_length=20)
    memo: str | None = Field(default=None, max_length=140)
    nonce: str = NonceField
    created_at: str = TimeField


class SignedEscrow(Strict):
    order: EscrowOrder
    signature: str = SignatureField


class EscrowReleaseOrder(Strict):
    type: Literal["escrow_release"]
    escrow: str = EscrowIdField
    amount: int = AmountField
    by: str = WalletIdField
    nonce: str = NonceField
    created_at: str = TimeField


class SignedEscrowRelease(Strict):
    order: EscrowReleaseOrder
    signature: str = SignatureField


class EscrowRefundOrder(Strict):
    type: Literal["escrow_refund"]
    escrow: str = EscrowIdField
    by: str = WalletIdField
    nonce: str = NonceField
    created_at: str = TimeField


class SignedEscrowRefund(Strict):
    order: EscrowRefundOrder
    signature: str = SignatureField
