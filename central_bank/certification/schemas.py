"""Wire types of the certification centre."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


# ---------------------------------------------------------------- offline revocations


class RevokeDevice(Strict):
    """An operator revokes one of its offline devices (cbdc/offline.py)."""

    device: str = Field(pattern=r"^[A-Z0-9]{4}D[0-9A-F]{15}$", description="offline device id")
    serial: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="certificate serial")
    reason: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="a code, not free text (e.g. counter_reuse, overspend, lost)",
    )


class RevokedDevice(BaseModel):
    """An entry of the revocation list."""

    # The list is signed as the service built it: a field added there must pass through.
    model_config = ConfigDict(extra="allow")

    device: str
    serial: str
    operator: str
    reason: str
    at: str = Field(description="when the central bank recorded it (ISO 8601)")


class RevocationOut(RevokedDevice):
    version: int = Field(description="the list's version once this entry was added")
    created: bool = Field(description="false: the device was already revoked (nothing changed)")


class RevocationListDocument(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["offline-revocation-list"]
    version: int = Field(description="number of entries; only grows")
    issued_at: str
    revoked: list[RevokedDevice]


class SignedRevocationList(BaseModel):
    """`document` signed with the central bank's key (cbdc.tokens.verify_document)."""

    document: RevocationListDocument
    signature: str
