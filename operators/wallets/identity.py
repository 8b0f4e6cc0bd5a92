"""Customer identity at the operator: evidence checks by wallet class, encryption at rest, and
the escrow copy sealed to the regulator.

* The evidence a class needs comes from the policy file (`[evidence]`); remote checks are in
  cbdc/identity.py; `in_person` can only be attested by operator staff.
* Identity is stored encrypted (AES-256-GCM under the operator's data key, bound to the
  customer row), never in clear.
* Each wallet also carries an escrow record: {wallet, class, identity} sealed to the
  regulator's X25519 key. Only the regulator's private key, which no service holds, opens it,
  and the operator releases it only against a signed disclosure order (operators/disclosure).
  Every record a wallet ever had is kept as an identity version (operators/identity_history).
* Verified evidence is not replaced by self-service: a holder may add evidence when upgrading,
  but a different value for a field already held is refused (`identity_change_needs_staff`);
  corrections are made by staff at the counter and become a new version.
* Uniqueness of evidence is checked through a keyed blind index: HMAC-SHA256 of the
  normalised ID number, phone (E.164) or bank account under a key derived (HKDF) from the
  data key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cbdc.clock import iso
from cbdc.crypto import b64d, b64e, canonical_json
from cbdc.identity import (
    PHONE_FORMS,
    canonical_phone,
    normalise,
    printable_text,
    valid_bank_account,
    valid_phone,
    valid_resident_id,
)
from cbdc.policy import Policy, WalletClass
from cbdc.sealing import seal_json
from operators.errors import EvidenceInvalid, EvidenceMissing, InPersonRequired, OperatorError

INDEXED_KINDS = ("id_number", "phone", "bank_account")  # evidence kinds in the blind index
# Phone indexes are of the E.164 form and say so: rows without the prefix were made with the
# earlier normal form (digits without `+`) and are rewritten when the service starts
# (identity_history.reindex_legacy_phones).
PHONE_INDEX_PREFIX = "e164:"


class IdentityChangeNeedsStaff(OperatorError):
    code = "identity_change_needs_staff"
    status = 403
    title = "Verified identity is corrected at the counter, not by self-service"


class WalletsPerIdLimit(OperatorError):
    code = "wallets_per_id_per_class"
    status = 403
    title = "This ID number already holds the policy's number of wallets of this class here"


class ClassIvPerPhoneLimit(OperatorError):
    code = "class_iv_per_phone"
    status = 403
    title = "This phone number already holds the policy's number of class IV wallets here"


class EvidenceOfOtherHolder(OperatorError):
    code = "evidence_of_other_holder"
    status = 409
    title = "Evidence of another holder: an account belongs to one ID number, an ID to one name"


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
        check = CHECKS.get(kind)
        if check is not None and not check(str(value)):
            raise EvidenceInvalid(f"customer.{field}: does not pass verification")
        verified.append(kind)
    return verified


CHECKS = {"phone": valid_phone, "id_number": valid_resident_id, "bank_account": valid_bank_account}


# Longest value accepted per customer field (the API schema has the same bounds).
FIELD_MAX = {"display_name": 200, "phone": 32, "id_number": 40, "bank_account": 40}


def check_well_formed(customer: dict[str, Any] | None) -> dict[str, Any] | None:
    """Every phone, ID number and bank account presented must pass its check, whether the
    class asked for it or not: nothing malformed (non-ASCII digits, a trailing newline) is
    stored, sealed or indexed. No field may hold a control, zero-width or bidi character, or
    be longer than its bound. Returns the evidence with the phone in its canonical form
    (E.164), which is what is stored, sealed and indexed."""
    if customer is None:
        return None
    for field, value in customer.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise EvidenceInvalid(f"customer.{field}: must be a string")
        if len(value) > FIELD_MAX.get(field, 200):
            raise EvidenceInvalid(
                f"customer.{field}: longer than {FIELD_MAX.get(field, 200)} characters"
            )
        if not printable_text(value):
            raise EvidenceInvalid(
                f"customer.{field}: contains a control, zero-width or bidi character"
            )
    for field, check in CHECKS.items():
        value = customer.get(field)
        if value and not check(value):
            detail = PHONE_FORMS if field == "phone" else "does not pass verification"
            raise EvidenceInvalid(f"customer.{field}: {detail}")
    canonical = dict(customer)
    if canonical.get("phone"):
        canonical["phone"] = canonical_phone(canonical["phone"])
    return canonical


def held_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """A stored identity with its phone in E.164 (identities stored before the canonical form
    may hold another spelling of the number: `normalise` reads it)."""
    phone = identity.get("phone")
    if phone and canonical_phone(str(phone)) != phone:
        try:
            return {**identity, "phone": normalise("phone", str(phone))}
        except ValueError:
            return identity
    return identity


class IdentityCipher:
    """AES-256-GCM under the operator's data key; the row id is bound in as associated data."""

    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != 32:
            raise ValueError("the operator data key must be 32 bytes")
        self._aead = AESGCM(data_key)
        self._index_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"cbdc evidence blind index v1"
        ).derive(data_key)

    def blind_index(self, kind: str, value: str) -> str:
        """HMAC-SHA256 of the normalised evidence under the index key: equal evidence gives
        equal indexes, and without the data key an index reveals nothing of the value."""
        message = f"{kind}\x00{normalise(kind, value)}".encode()
        digest = hmac.new(self._index_key, message, hashlib.sha256).hexdigest()
        return PHONE_INDEX_PREFIX + digest if kind == "phone" else digest

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


def merge_identity(
    held: dict[str, Any],
    given: dict[str, Any] | None,
    *,
    by_staff: bool,
    verified: set[str] | frozenset[str] = frozenset(INDEXED_KINDS) | {"name"},
) -> tuple[dict[str, Any], bool]:
    """The identity after `given` evidence is presented, and whether it changed. Self-service
    may add fields not yet held, and replace a field never verified (a class IV holder's
    unverified name); a different value (by its normal form) for a field that was ever
    verified evidence (`verified`: evidence kinds) is a correction, which only staff may
    make. Either way the earlier identity stays in the escrow history."""
    identity = dict(held)
    changed = False
    for field, value in (given or {}).items():
        if not value:
            continue
        old = identity.get(field)
        if old is not None and _same(field, str(old), str(value)):
            continue  # the same evidence again, spelt as first given
        kind = "name" if field == "display_name" else field
        if old is not None and not by_staff and kind in verified:
            raise IdentityChangeNeedsStaff(
                f"customer.{field}: differs from the verified identity; corrections are made "
                "at the counter (staff) and keep the earlier version"
            )
        identity[field] = value
        changed = True
    return identity, changed


def _same(field: str, a: str, b: str) -> bool:
    kind = "name" if field == "display_name" else field
    try:
        return normalise(kind, a) == normalise(kind, b)
    except ValueError:
        return a == b


def index_rows(
    cipher: IdentityCipher, identity: dict[str, Any], kinds: set[str] | list[str]
) -> list[tuple[str, str, str | None]]:
    """(kind, blind index, holder) of the verified evidence `kinds` of `identity`: an ID
    number's holder is its name, a bank account's holder its ID number."""
    rows: list[tuple[str, str, str | None]] = []
    name, id_number = identity.get("display_name"), identity.get("id_number")
    for kind in INDEXED_KINDS:
        value = identity.get(kind)
        if kind not in kinds or not value:
            continue
        holder = None
        if kind == "id_number" and name:
            holder = cipher.blind_index("name", str(name))
        elif kind == "bank_account" and id_number:
            holder = cipher.blind_index("id_number", str(id_number))
        rows.append((kind, cipher.blind_index(kind, str(value)), holder))
    return rows


def escrow_record(
    *,
    regulator_sealing_key: str,
    wallet_id: str,
    operator: str,
    wallet_class: WalletClass,
    identity: dict[str, Any],
    evidence: list[str],
    version: int,
    valid_from: datetime,
    changed_by: str,
) -> dict[str, Any]:
    """The record sealed to the regulator: the version number and the time it is in force
    from are inside the seal, so the regulator reads them from what it decrypts."""
    record = {
        "wallet_id": wallet_id,
        "operator": operator,
        "wallet_class": wallet_class.name,
        "identity": identity,
        "evidence": evidence,
        "version": version,
        "valid_from": iso(valid_from),
        "changed_by": changed_by,
        "sealed_at": iso(valid_from),
    }
    return seal_json(regulator_sealing_key, record, context=wallet_id.encode())
