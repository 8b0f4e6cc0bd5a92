"""Wire types of scheduled payments. Strict like every signed body (`operators.schemas`): the
signature covers the canonical JSON of the order exactly as sent. Ranges (first_at, every,
count) are checked by the service, each with its own problem code."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from operators.schemas import AmountField, NonceField, Strict, WalletIdField


class ScheduleOrder(Strict):
    type: Literal["schedule"]
    payer: str = WalletIdField
    payee: str = WalletIdField
    amount: int = AmountField
    currency: str = Field(min_length=3, max_length=3)
    first_at: str = Field(max_length=40, description="ISO 8601 with time zone, in the future")
    every: int | None = Field(description="seconds between executions; null: one-off")
    count: int = Field(description="executions at most, 1..1000 (one-off: 1)")
    nonce: str = NonceField
    created_at: str = Field(description="ISO 8601 with time zone")
    memo: str | None = Field(default=None, max_length=140)


class SignedSchedule(Strict):
    order: ScheduleOrder
    signature: str = Field(min_length=80, max_length=100)
