"""Wire types of programmes and vouchers: the signed orders creating a programme, granting a
voucher and spending one, and the staff's merchant category. Strict like every signed body
(`operators.schemas`): the signature covers the canonical JSON of `order` exactly as sent."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from operators.offline.schemas import CurrencyField, SignatureField
from operators.programmable.escrow_schemas import TimeField
from operators.schemas import AmountField, NonceField, Strict, WalletIdField

ProgrammeIdField = Field(min_length=36, max_length=36, description="the programme's UUID")


class ProgrammeOrder(Strict):
    type: Literal["programme"]
    issuer: str = WalletIdField
    name: str = Field(min_length=1, max_length=100)
    categories: list[str] = Field(min_length=1, max_length=20)
    per_holder: int = AmountField
    expires_at: str = TimeField
    currency: str = CurrencyField
    nonce: str = NonceField
    created_at: str = TimeField


class SignedProgramme(Strict):
    order: ProgrammeOrder
    signature: str = SignatureField


class GrantOrder(Strict):
    type: Literal["voucher_grant"]
    programme: str = ProgrammeIdField
    holder: str = WalletIdField
    amount: int = AmountField
    nonce: str = NonceField
    created_at: str = TimeField


class SignedGrant(Strict):
    order: GrantOrder
    signature: str = SignatureField


class VoucherPaymentOrder(Strict):
    type: Literal["voucher_payment"]
    payer: str = WalletIdField
    payee: str = WalletIdField
    amount: int = AmountField
    programme: str = ProgrammeIdField
    currency: str = CurrencyField
    memo: str | None = Field(default=None, max_length=140)
    nonce: str = NonceField
    created_at: str = TimeField


class SignedVoucherPayment(Strict):
    order: VoucherPaymentOrder
    signature: str = SignatureField


class MerchantCategory(Strict):
    category: str | None
