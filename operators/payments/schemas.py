"""Wire types of the payments area: signed payment orders, single and in a batch.
Strict models: see `operators.schemas`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from operators.schemas import AmountField, NonceField, Strict, WalletIdField


class PaymentOrder(Strict):
    type: Literal["payment"]
    payer: str = WalletIdField
    payee: str = WalletIdField
    amount: int = AmountField
    currency: str = Field(min_length=3, max_length=3)
    nonce: str = NonceField
    created_at: str = Field(description="ISO 8601 with time zone")
    memo: str | None = Field(default=None, max_length=140)


class SignedPayment(Strict):
    order: PaymentOrder
    signature: str = Field(min_length=80, max_length=100)


class SignedPaymentBatch(Strict):
    orders: list[SignedPayment] = Field(min_length=1, max_length=1000)
