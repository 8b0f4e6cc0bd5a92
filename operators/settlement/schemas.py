"""Wire types of the settlement area: settlements delivered by other operators.
Strict models: see `operators.schemas`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class InboundSettlementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receipt: dict[str, Any]
    payee_tokens: list[dict[str, Any]] = Field(min_length=1, max_length=100)
    kind: Literal["payment", "return"]
    reference: str = Field(min_length=1, max_length=100)
    payee_wallet: str = Field(max_length=40)
    payer_alias: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=200)


class InboundSettlementBatchIn(BaseModel):
    """Settlements the central bank settled in one batch, delivered at once; each item as a
    single delivery (`InboundSettlementIn`) of kind "payment"."""

    model_config = ConfigDict(extra="forbid")

    items: list[InboundSettlementIn] = Field(min_length=1, max_length=1000)
