"""Wire types of the central bank API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Amount = Field(gt=0, le=10**15, description="minor units (e.g. fen)")


class Strict(BaseModel):
    """No extra fields and no coercion: "5", 1.0 or true are not amounts."""

    model_config = ConfigDict(extra="forbid", strict=True)


class RegisterOperator(Strict):
    code: str = Field(pattern=r"^[A-Z0-9]{4}$", description="routing code, 4 of A-Z0-9")
    name: str = Field(min_length=1, max_length=200)
    public_key: str = Field(min_length=40, max_length=60, description="Ed25519, base64url")
    quota: int = Field(ge=0, le=10**15)


class SetQuota(Strict):
    quota: int = Field(ge=0, le=10**15)


class FundReserves(Strict):
    amount: int = Amount


class IssueRequest(Strict):
    amount: int = Amount


class RedeemRequest(Strict):
    serials: list[str] = Field(min_length=1, max_length=1000)
    amount: int = Amount


class SplitRequest(Strict):
    serials: list[str] = Field(min_length=1, max_length=1000)
    outputs: list[int] = Field(min_length=1, max_length=100)


class SettleRequest(Strict):
    payee_operator: str = Field(pattern=r"^[A-Z0-9]{4}$")
    amount: int = Amount
    serials: list[str] = Field(min_length=1, max_length=1000)
    reference: str = Field(min_length=1, max_length=100)


class OperatorOut(BaseModel):
    code: str
    name: str
    public_key: str
    status: str
    certificate: dict[str, Any]
    certificate_signature: str


class Info(BaseModel):
    service: str = "central_bank"
    currency: str
    currency_decimals: int
    public_key: str


class ClearingItem(Strict):
    reference: str = Field(min_length=1, max_length=100, description="the payer's payment id")
    payee_wallet: str = Field(min_length=4, max_length=40)
    payer_alias: str = Field(min_length=1, max_length=64)
    amount: int = Amount


class ClearingSubmission(Strict):
    submission_id: str = Field(min_length=36, max_length=36, description="UUID, idempotency")
    payee_operator: str = Field(pattern=r"^[A-Z0-9]{4}$")
    gross: int = Field(gt=0, le=10**18, description="sum of the items' amounts")
    items: list[ClearingItem] = Field(min_length=1, max_length=10_000)


class PayObligation(Strict):
    serials: list[str] = Field(min_length=1, max_length=1000)


class AcknowledgeObligation(Strict):
    returned: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description="references of incoming payments the operator is sending back",
    )
