"""Wire types of the compliance area: the regulator's signed disclosure orders.
Strict models: see `operators.schemas`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from operators.schemas import Strict


class DisclosureOrder(Strict):
    type: Literal["disclosure-order"]
    order_id: str = Field(min_length=36, max_length=36)
    wallet_id: str = Field(min_length=20, max_length=20)
    legal_basis: str = Field(min_length=1, max_length=500)
    requester: str = Field(min_length=1, max_length=200)
    issued_at: str = Field(max_length=40)
    as_of: str | None = Field(
        default=None,
        max_length=40,
        description="ISO 8601: release the identity in force then (default: every version)",
    )


class SignedDisclosureOrder(Strict):
    order: DisclosureOrder
    signature: str = Field(min_length=80, max_length=100)
