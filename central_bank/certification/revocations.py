"""The system-wide list of revoked offline devices (offline payments, docs/offline.md).

A device is certified by its own operator (cbdc/offline.py `device_certificate`), but it is paid
by devices of every operator: so a revocation must reach all payees, whatever their operator.
The operator that detects a double spend by one of its devices revokes it here
(`POST /v1/certification/offline-revocations`); every operator hands the central bank's signed
list (`GET ...`) to its devices at each sync, and a payee device refuses a revoked payer offline
(cbdc.offline.check_payment).

The central bank does not know the devices (only their operators do): it trusts an operator for
its own devices, which it can tell by the device id's routing code (`cbdc.offline.operator_of`),
and refuses a revocation of another operator's device. A revocation is permanent and recorded
once per device (the same device again answers the first entry); entries are numbered 1, 2, ...
in the order they arrived, so the list's version (its number of entries) only grows, and a
device can tell a newer list from an older one. The table is append-only (migration cb0009).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc import offline
from cbdc.clock import iso
from cbdc.crypto import SigningKey
from cbdc.errors import Conflict, Forbidden
from cbdc.tokens import sign_document
from central_bank.models import Operator

LOCK_KEY = "offline_revocations"  # advisory lock: one writer assigns the next version


class NotDeviceOperator(Forbidden):
    code = "offline_revocation_not_operator"
    title = "Only the device's own operator revokes it"


class RevocationConflict(Conflict):
    code = "offline_revocation_conflict"
    title = "The device is already revoked under another serial"


@dataclass(frozen=True)
class Revocation:
    device: str
    serial: str
    operator: str
    reason: str
    at: datetime
    version: int
    created: bool  # False: the device was revoked before (this call changed nothing)

    def entry(self) -> dict[str, Any]:
        """The entry as the signed list carries it (cbdc.offline.revocation_list)."""
        return {
            "device": self.device,
            "serial": self.serial,
            "operator": self.operator,
            "reason": self.reason,
            "at": iso(self.at),
        }

    def answer(self) -> dict[str, Any]:
        return {**self.entry(), "version": self.version, "created": self.created}


# ------------------------------------------------------------------ service


def revoke(
    session: Session,
    *,
    operator: Operator,
    device: str,
    serial: str,
    reason: str,
    now: datetime,
) -> Revocation:
    """Revoke `device` (of `operator`); idempotent per device: a device already revoked answers
    its first entry (reason and time unchanged), unless the serial differs (409)."""
    if offline.operator_of(device) != operator.code:
        raise NotDeviceOperator(
            f"device {device} belongs to operator {offline.operator_of(device)}, "
            f"not {operator.code}"
        )
    lock_list(session)
    existing = revocation_of(session, device)
    if existing is None:
        add_revocation(
            session,
            device=device,
            serial=serial,
            operator_id=operator.id,
            reason=reason,
            now=now,
        )
        created = revocation_of(session, device)
        assert created is not None
        return _revocation(created, created=True)
    if existing["serial"] != serial:
        raise RevocationConflict(
            f"device {device} was revoked with serial {existing['serial']}, not {serial}"
        )
    return _revocation(existing, created=False)


def signed_list(session: Session, *, key: SigningKey, now: datetime) -> dict[str, Any]:
    """The whole list, signed with the central bank's key: version = number of entries."""
    entries = [_revocation(row, created=False).entry() for row in all_revocations(session)]
    document = offline.revocation_list(version=len(entries), issued_at=now, revoked=entries)
    return sign_document(key, document)


def _revocation(row: dict[str, Any], *, created: bool) -> Revocation:
    return Revocation(
        device=str(row["device"]),
        serial=str(row["serial"]),
        operator=str(row["operator"]),
        reason=str(row["reason"]),
        at=row["revoked_at"],
        version=int(row["version"]),
        created=created,
    )


# ------------------------------------------------------------------ repository

_SELECT = (
    "SELECT r.device, r.serial, o.code AS operator, r.reason, r.revoked_at, r.version "
    "FROM offline_revocations r JOIN operators o ON o.id = r.operator_id "
)


def lock_list(session: Session) -> None:
    """Serialise writers: the next version is max + 1, read and written under this lock."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": LOCK_KEY})


def revocation_of(session: Session, device: str) -> dict[str, Any] | None:
    row = session.execute(text(_SELECT + "WHERE r.device = :d"), {"d": device}).mappings().first()
    return dict(row) if row is not None else None


def add_revocation(
    session: Session, *, device: str, serial: str, operator_id: int, reason: str, now: datetime
) -> None:
    """Append the entry with the next version (the caller holds `lock_list`)."""
    session.execute(
        text(
            "INSERT INTO offline_revocations "
            "(device, serial, operator_id, reason, revoked_at, version) "
            "SELECT :d, :s, :o, :r, :now, coalesce(max(version), 0) + 1 "
            "FROM offline_revocations"
        ),
        {"d": device, "s": serial, "o": operator_id, "r": reason, "now": now},
    )


def all_revocations(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(text(_SELECT + "ORDER BY r.version")).mappings().all()
    return [dict(row) for row in rows]
