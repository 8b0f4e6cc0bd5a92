"""Wire types of the central bank API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from cbdc.addresses import is_valid_wallet_id

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


class OperatorOut(BaseModel):
    code: str
    name: str
    public_key: str
    status: str
    certificate: dict[str, Any]
    certificate_signature: str


class Info(BaseModel):
    service: str = "central_bank"
    audience: str = "central-bank"  # cbdc.envelope.CENTRAL_BANK_AUDIENCE: sign requests for it
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


class DisclosureAnchorIn(Strict):
    """The head of an operator's disclosure log after entry `seq`, signed with the operator's
    key over cbdc.disclosure_log.anchor_document(operator, seq, hash)."""

    seq: int = Field(ge=1, le=2**62)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature: str = Field(min_length=80, max_length=100, pattern=r"^[A-Za-z0-9_-]+=*$")


# ---------------------------------------------------------------- AML reports
#
# A report is pseudonymous by schema: a wallet id, the rule, amounts, counts and windows. Each
# rule has its own `details`, every field bounded and nothing else allowed, so no name, phone,
# ID number or free text can reach the analysis centre, and the whole report stays small.

AML_REPORT_MAX_BYTES = 2048


def _wallet_id(value: str) -> str:
    if not is_valid_wallet_id(value):
        raise ValueError("not a valid wallet id")
    return value


WalletPseudonym = Annotated[
    str,
    Field(min_length=20, max_length=20, pattern=r"^[A-Z0-9]{4}[0-9]{16}$"),
    AfterValidator(_wallet_id),
]
Count = Annotated[int, Field(ge=0, le=10**9)]
Minutes = Annotated[int, Field(ge=1, le=366 * 24 * 60)]
Total = Annotated[int, Field(ge=0, le=10**18, description="minor units")]


class LargeValueDetails(Strict):
    payee_operator: str = Field(pattern=r"^[A-Z0-9]{4}$")
    threshold: Total


class StructuringDetails(Strict):
    count: Count
    limit: Total
    window_minutes: Minutes


class VelocityDetails(Strict):
    count: Count
    window_minutes: Minutes


class FanDetails(Strict):
    counterparties: Count
    window_minutes: Minutes


class LoadUnloadDetails(Strict):
    loaded: Total
    unloaded: Total
    window_minutes: Minutes


class _AmlReport(Strict):
    report_id: str = Field(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )
    wallet: WalletPseudonym
    amount: int = Field(ge=0, le=10**15)
    occurred_at: str = Field(min_length=20, max_length=40)


class LargeValueReport(_AmlReport):
    rule: Literal["large_value"]
    details: LargeValueDetails


class StructuringReport(_AmlReport):
    rule: Literal["structuring"]
    details: StructuringDetails


class VelocityReport(_AmlReport):
    rule: Literal["velocity"]
    details: VelocityDetails


class FanReport(_AmlReport):
    rule: Literal["fan_out", "fan_in"]
    details: FanDetails


class LoadUnloadReport(_AmlReport):
    rule: Literal["rapid_load_unload"]
    details: LoadUnloadDetails


AmlReport = Annotated[
    LargeValueReport | StructuringReport | VelocityReport | FanReport | LoadUnloadReport,
    Field(discriminator="rule"),
]
