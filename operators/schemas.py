"""Wire types of the operator API: the fields and the strict base every area's schemas use
(`operators.<area>.schemas`), and the staff amount body (`CashLoad`).

Customer orders are signed by the wallet key over the canonical JSON of `order` exactly as
sent (`model_dump(exclude_unset=True)`), so the models are strict: no coercion, no extra
fields, or the signature would cover something other than what was checked.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

WalletIdField = Field(
    min_length=20, max_length=20, description="routing code + 14 digits + 2 check"
)
AmountField = Field(gt=0, le=10**15, description="minor units")
NonceField = Field(min_length=8, max_length=64, description="unique per wallet; idempotency key")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CashLoad(Strict):
    amount: int = AmountField
