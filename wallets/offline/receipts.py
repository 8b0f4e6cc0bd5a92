"""What a secure element checks in the signed documents it takes online: a funding record
(signed by its operator) and a sync answer (the ack signed by its operator, the revocation list
signed by the central bank). The checks that need only the documents and the keys; the ones
that need the device's state (seq order, purse cap, counter, time of the last sync) are the
secure element's (wallets.offline.secure_element). Refusals raise `cbdc.offline.OfflineRefusal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cbdc import offline
from cbdc.clock import parse_iso
from cbdc.offline import OfflineRefusal
from cbdc.tokens import verify_document


@dataclass(frozen=True)
class Funding:
    seq: int
    amount: int  # minor units


def check_funding(
    signed_record: Any, *, operator_key: str, device_id: str, currency: str
) -> Funding:
    """A funding record its operator signed for this device, in its currency."""
    if not isinstance(signed_record, dict) or not verify_document(operator_key, signed_record):
        raise OfflineRefusal(offline.BAD_SIGNATURE, "the funding record is not the operator's")
    record = signed_record["document"]
    amount, seq = record.get("amount"), record.get("seq")
    if record.get("type") != "offline-funding" or not _positive(amount) or not _positive(seq):
        raise OfflineRefusal(offline.MALFORMED, "not a funding record")
    if record.get("device") != device_id:
        raise OfflineRefusal(offline.WRONG_PAYEE, "the funding record is for another device")
    if record.get("currency") != currency:
        raise OfflineRefusal(offline.WRONG_CURRENCY, f"the funding is not in {currency}")
    return Funding(seq=seq, amount=amount)


@dataclass(frozen=True)
class SyncAnswer:
    counter: int  # the ack covers the device's transfers up to this counter
    at: datetime  # the operator's time of the sync: the offline allowance counts from it
    revocations: dict[str, Any]  # the signed list
    version: int  # the list's
    carried: frozenset[str]  # hashes of the received payments the operator listed


def check_sync_answer(
    answer: Any, *, operator_key: str, central_bank_public_key: str, device_id: str
) -> SyncAnswer:
    """The operator's answer to this device's sync: {"ack", "revocations", "received", ...}."""
    ack = answer.get("ack") if isinstance(answer, dict) else None
    if not isinstance(ack, dict) or not verify_document(operator_key, ack):
        raise OfflineRefusal(offline.BAD_SIGNATURE, "the sync ack is not the operator's")
    revocations = answer.get("revocations")
    if not isinstance(revocations, dict) or not verify_document(
        central_bank_public_key, revocations
    ):
        raise OfflineRefusal(offline.BAD_SIGNATURE, "the revocation list is not the central bank's")
    document, listed = ack["document"], revocations["document"]
    if document.get("type") != "offline-sync-ack" or document.get("device") != device_id:
        raise OfflineRefusal(offline.MALFORMED, "the ack is for another device")
    if listed.get("type") != "offline-revocation-list":
        raise OfflineRefusal(offline.MALFORMED, "not a revocation list")
    counter, version = document.get("counter"), listed.get("version")
    try:
        at = parse_iso(str(document["at"]))
        revoked = listed["revoked"]
        if not all(isinstance(entry["device"], str) for entry in revoked):
            raise TypeError
    except (KeyError, TypeError, ValueError):
        raise OfflineRefusal(offline.MALFORMED, "the ack or the list lacks a field") from None
    if not _count(counter) or not _count(version):
        raise OfflineRefusal(offline.MALFORMED, "counter and version must be integers >= 0")
    received = answer.get("received")
    carried = frozenset(
        str(item["hash"])
        for item in (received if isinstance(received, list) else [])
        if isinstance(item, dict) and isinstance(item.get("hash"), str)
    )
    return SyncAnswer(
        counter=counter, at=at, revocations=revocations, version=version, carried=carried
    )


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
