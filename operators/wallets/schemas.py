"""Wire types of the wallets area: opening a wallet, changing its class, a customer's evidence.
Strict models: see `operators.schemas`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from operators.schemas import Strict


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


class OpenWallet(Strict):
    public_key: str = Field(min_length=40, max_length=60, description="Ed25519, base64url")
    wallet_class: Literal["I", "II", "III", "IV"] = "IV"
    customer: CustomerIn | None = None
    customer_id: int | None = Field(default=None, description="staff only: existing customer")
