"""Wire types of the analysis centre: disclosure-log anchors and AML reports."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from cbdc.addresses import is_valid_wallet_id
from central_bank.schemas import Strict


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


class OfflineDoubleSpendDetails(Strict):
    kind: Literal["counter_reuse", "overspend"]
    counter: Annotated[int, Field(ge=1, le=2**62)]
    loss: Total


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


class OfflineDoubleSpendReport(_AmlReport):
    """An offline device of the wallet spent the same value twice (operators/offline)."""

    rule: Literal["offline_double_spend"]
    details: OfflineDoubleSpendDetails


AmlReport = Annotated[
    LargeValueReport
    | StructuringReport
    | VelocityReport
    | FanReport
    | LoadUnloadReport
    | OfflineDoubleSpendReport,
    Field(discriminator="rule"),
]
