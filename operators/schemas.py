"""Wire types of the operator API.

Customer orders are signed by the wallet key over the canonical JSON of `order` exactly as
sent (`model_dump(exclude_unset=True)`), so the models are strict: no coercion, no extra
fields, or the signature would cover something other than what was checked.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WalletIdField = Field(
    min_length=20, max_length=20, description="routing code + 14 digits + 2 check"
)
AmountField = Field(gt=0, le=10**15, description="minor units")
NonceField = Field(min_length=8, max_length=64, description="unique per wallet; idempotency key")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PaymentOrder(Strict):
    type: Literal["payment"]
    payer: str = WalletIdField
    payee: str = WalletIdField
    amount: int = AmountField
    currency: str = Field(min_length=3, max_length=3)
    nonce: str = NonceField
    created_at: str = Field(description="ISO 8601 with time zone")
    memo: str | None = Field(default=None, max_length=140)


class LoadOrder(Strict):
    type: Literal["load"]
    wallet: str = WalletIdField
    amount: int = AmountField
    currency: str = Field(min_length=3, max_length=3)
    nonce: str = NonceField
    created_at: str


class UnloadOrder(Strict):
    type: Literal["unload"]
    wallet: str = WalletIdField
    amount: int = AmountField
    currency: str = Field(min_length=3, max_length=3)
    nonce: str = NonceField
    created_at: str


class SignedPayment(Strict):
    order: PaymentOrder
    signature: str = Field(min_length=80, max_length=100)


class SignedPaymentBatch(Strict):
    orders: list[SignedPayment] = Field(min_length=1, max_length=1000)


class SignedLoad(Strict):
    order: LoadOrder
    signature: str = Field(min_length=80, max_length=100)


class SignedUnload(Strict):
    order: UnloadOrder
    signature: str = Field(min_length=80, max_length=100)


class CustomerIn(Strict):
    """Identity evidence. What a class needs is in the policy file; see GET /v1/info. Lengths
    are bounded here; the content (phone form, check digits, no control, zero-width or bidi
    characters) is checked by the service (operators/wallets/identity.py: `check_well_formed`)."""

    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    phone: str | None = Field(
        default=None,
        max_length=32,
        description="E.164 (+<country code><number>) or a Chinese mobile number 1[3-9] and 9 "
        "digits; checked by the service (evidence_invalid), stored in E.164",
    )
    id_number: str | None = Field(default=None, min_length=4, max_length=40)
    bank_account: str | None = Field(default=None, min_length=8, max_length=40)


class ChangeClass(Strict):
    wallet_class: Literal["I", "II", "III", "IV"]
    customer: CustomerIn | None = Field(default=None, description="additional evidence")


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


class OpenWallet(Strict):
    public_key: str = Field(min_length=40, max_length=60, description="Ed25519, base64url")
    wallet_class: Literal["I", "II", "III", "IV"] = "IV"
    customer: CustomerIn | None = None
    customer_id: int | None = Field(default=None, description="staff only: existing customer")


class CashLoad(Strict):
    amount: int = AmountField


class DepositCredit(Strict):
    amount: int = AmountField


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
