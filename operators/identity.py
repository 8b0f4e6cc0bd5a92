"""Customer identity at the operator: evidence checks by wallet class, encryption at rest, and
the escrow copy sealed to the regulator.

* The evidence a class needs comes from the policy file (`[evidence]`); remote checks are in
  cbdc/identity.py; `in_person` can only be attested by operator staff.
* Identity is stored encrypted (AES-256-GCM under the operator's data key, bound to the
  customer row), never in clear.
* Each wallet also carries an escrow record: {wallet, class, identity} sealed to the
  regulator's X25519 key. Only the regulator's private key, which no service holds, opens it,
  and the operator releases it only against a signed disclosure order (operators/disclosure).
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cbdc.clock import iso, utcnow
from cbdc.crypto import b64d, b64e, canonical_json
from cbdc.identity import valid_bank_account, valid_phone, valid_resident_id
from cbdc.policy import Policy, WalletClass
from cbdc.sealing import seal_json
from operators.errors import EvidenceInvalid, EvidenceMissing, InPersonRequired


def check_evidence(
    policy: Policy, wallet_class: WalletClass, identity: dict[str, Any], *, by_staff: bool
) -> list[str]:
    """Verify what `wallet_class` needs; return the evidence kinds that were verified."""
    required = policy.required_evidence(wallet_class)
    if "in_person" in required and not by_staff:
        raise InPersonRequired(f"class {wallet_class.name} is opened at the counter")
    verified: list[str] = []
    for kind in required:
        if kind == "in_person":
            if not by_staff:
                raise InPersonRequired(f"class {wallet_class.name} is opened at the counter")
            verified.append(kind)
            continue
        field = "display_name" if kind == "name" else kind
        value = identity.get(field)
        if not value:
            raise EvidenceMissing(f"customer.{field}: class {wallet_class.name} needs it")
        check = {
            "phone": valid_phone,
            "id_number": valid_resident_id,
            "bank_account": valid_bank_account,
        }.get(kind)
        if check is not None and not check(str(value)):
            raise EvidenceInvalid(f"customer.{field}: does not pass verification")
        verified.append(kind)
    return verified


class IdentityCipher:
    """AES-256-GCM under the operator's data key; the row id is bound in as associated data."""

    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != 32:
            raise ValueError("the operator data key must be 32 bytes")
        self._aead = AESGCM(data_key)

    @staticmethod
    def generate_key() -> bytes:
        return AESGCM.generate_key(bit_length=256)

    def encrypt(self, identity: dict[str, Any], *, bound_to: str) -> dict[str, str]:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, canonical_json(identity), bound_to.encode())
        return {"v": "1", "nonce": b64e(nonce), "ct": b64e(sealed)}

    def decrypt(self, box: dict[str, str], *, bound_to: str) -> dict[str, Any]:
        import json

        try:
            plain = self._aead.decrypt(b64d(box["nonce"]), b64d(box["ct"]), bound_to.encode())
        except (InvalidTag, KeyError, ValueError) as exc:
            raise ValueError("identity record does not decrypt (wrong key or tampered)") from exc
        return dict(json.loads(plain))


def escrow_record(
    *,
    regulator_sealing_key: str,
    wallet_id: str,
    operator: str,
    wallet_class: WalletClass,
    identity: dict[str, Any],
    evidence: list[str],
) -> dict[str, Any]:
    record = {
        "wallet_id": wallet_id,
        "operator": operator,
        "wallet_class": wallet_class.name,
        "identity": identity,
        "evidence": evidence,
        "sealed_at": iso(utcnow()),
    }
    return seal_json(regulator_sealing_key, record, context=wallet_id.encode())
