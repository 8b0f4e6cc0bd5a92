"""Wire types every centre shares (and the public `/v1/info`); each centre has its own
schemas.py."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Amount = Field(gt=0, le=10**15, description="minor units (e.g. fen)")


class Strict(BaseModel):
    """No extra fields and no coercion: "5", 1.0 or true are not amounts."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Info(BaseModel):
    service: str = "central_bank"
    audience: str = "central-bank"  # cbdc.envelope.CENTRAL_BANK_AUDIENCE: sign requests for it
    currency: str
    currency_decimals: int
    public_key: str
