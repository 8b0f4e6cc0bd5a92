"""Wire types of the certification centre."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from central_bank.schemas import Amount, Strict


class RegisterOperator(Strict):
    code: str = Field(pattern=r"^[A-Z0-9]{4}$", description="routing code, 4 of A-Z0-9")
    name: str = Field(min_length=1, max_length=200)
    public_key: str = Field(min_length=40, max_length=60, description="Ed25519, base64url")
    quota: int = Field(ge=0, le=10**15)


class SetQuota(Strict):
    quota: int = Field(ge=0, le=10**15)


class FundReserves(Strict):
    amount: int = Amount


class OperatorOut(BaseModel):
    code: str
    name: str
    public_key: str
    status: str
    certificate: dict[str, Any]
    certificate_signature: str
