"""Wire types of the clearing centre: RTGS batches and net clearing."""

from __future__ import annotations

from pydantic import Field

from central_bank.schemas import Amount, Strict


class SettleBatchItem(Strict):
    reference: str = Field(
        min_length=1, max_length=100, description="the payment's reference; idempotent per item"
    )
    payee_operator: str = Field(pattern=r"^[A-Z0-9]{4}$")
    amount: int = Amount


class SettleBatchRequest(Strict):
    """Batched gross settlement: every item settles gross and final, with its own receipt (or
    its own refusal); the inputs are spent once for the batch and the change minted once."""

    reference: str = Field(min_length=1, max_length=100, description="the batch's reference")
    serials: list[str] = Field(min_length=1, max_length=1000)
    items: list[SettleBatchItem] = Field(min_length=1, max_length=1000)


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
