"""Wire types of the offline area. Strict like every signed body (`operators.schemas`): the
signatures cover the canonical JSON of the documents exactly as sent
(`model_dump(exclude_unset=True)`), so nothing is coerced and no field is added or dropped."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from operators.schemas import AmountField, NonceField, Strict, WalletIdField

DeviceIdField = Field(pattern=r"^[A-Z0-9]{4}D[0-9A-F]{15}$", description="operator code + D + hex")
SignatureField = Field(min_length=80, max_length=100)
CurrencyField = Field(min_length=3, max_length=3)


class DeviceOrder(Strict):
    type: Literal["offline_device"]
    wallet: str = WalletIdField
    public_key: str = Field(min_length=40, max_length=60, description="Ed25519, base64")
    name: str = Field(min_length=1, max_length=64)
    currency: str = CurrencyField
    nonce: str = NonceField
    created_at: str


class SignedDeviceOrder(Strict):
    order: DeviceOrder
    signature: str = SignatureField


class FundOrder(Strict):
    type: Literal["offline_fund"]
    wallet: str = WalletIdField
    device: str = DeviceIdField
    amount: int = AmountField
    currency: str = CurrencyField
    nonce: str = NonceField
    created_at: str


class SignedFund(Strict):
    order: FundOrder
    signature: str = SignatureField


class Transfer(Strict):
    """A transfer document (cbdc.offline.transfer), signed by the payer's secure element."""

    type: Literal["offline-transfer"]
    payer: str = Field(max_length=40)
    payee: str = Field(max_length=40)
    payee_wallet: str = Field(max_length=40)
    counter: int = Field(ge=1, le=2**62)
    amount: int = AmountField
    currency: str = CurrencyField
    at: str = Field(max_length=40)
    prev: str = Field(max_length=64)


class SignedTransfer(Strict):
    transfer: Transfer
    signature: str = SignatureField


class SignedDocument(Strict):
    document: dict[str, Any]
    signature: str = SignatureField


class Payment(Strict):
    """What a payer device hands a payee device: a signed transfer and the payer's chain."""

    transfer: Transfer
    signature: str = SignatureField
    certificate: SignedDocument
    operator_certificate: SignedDocument


class SyncBatch(Strict):
    type: Literal["offline-sync"]
    device: str = DeviceIdField
    counter: int = Field(ge=0, le=2**62)
    sent: list[SignedTransfer] = Field(max_length=10_000)
    received: list[Payment] = Field(max_length=10_000)
    at: str = Field(max_length=40)


class SignedSync(Strict):
    batch: SyncBatch
    signature: str = SignatureField


class Claims(Strict):
    claims: list[Payment] = Field(min_length=1, max_length=10_000)
