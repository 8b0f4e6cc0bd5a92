"""Typed answers of the operator's escrow routes (`WalletClient.create_escrow`,
`release_escrow`, `refund_escrow`, `escrow`, `escrows`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class EscrowEvent(_Model):
    kind: str  # release | refund | expiry
    amount: int
    by: str | None = None  # the signer (None: the deadline's automatic refund)
    payment_id: str | None = None  # a release's payment
    at: str


class Escrow(_Model):
    escrow_id: str
    status: str  # open | released | refunded
    payer: str
    payee: str
    arbiter: str | None = None
    amount: int
    released: int
    refunded: int
    remaining: int
    currency: str
    deadline: str
    memo: str | None = None
    created_at: str
    closed_at: str | None = None
    events: list[EscrowEvent] = []
    payment: dict[str, Any] | None = None  # a release's payment receipt
    replayed: bool = False
