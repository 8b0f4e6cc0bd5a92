"""Offline devices revoked system-wide: reporting ours to the central bank, and handing the
central bank's signed list to our devices.

When adjudication detects a double spend by one of our devices (operators/offline), the
device's row is revoked here and, in the same transaction, `queue_revocation` queues an outbox
job of kind `offline_revoke`; the worker reports it to the central bank
(`POST /v1/certification/offline-revocations`, idempotent per device), which adds it to the one
list every operator hands its devices at each sync. A payee device at any operator then refuses
the revoked payer offline (cbdc.offline.check_payment).

`latest_list` fetches that signed list for a sync. It keeps the last good one in memory: while
the central bank is briefly unreachable a sync still hands over a list (the newest this process
saw; devices keep whichever has the higher version). With none ever fetched it raises
`RevocationListUnavailable` (503): a device must never be handed an unsigned or empty list in
place of the real one.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cbdc.errors import ServiceUnavailable
from cbdc.http import RemoteError, RemoteUnavailable
from cbdc.tokens import verify_document
from operators import repository as repo
from operators.clients import CentralBankClient
from operators.context import OperatorContext
from operators.errors import BadCentralBankDocument
from operators.jobs import JobHandler, JobRunner
from operators.models import OutboxJob

log = logging.getLogger(__name__)

KIND = "offline_revoke"
LIST_TYPE = "offline-revocation-list"
# Refusals that may pass (the operator suspended for a while, a key being rotated): retried.
RETRY_STATUSES = (401, 503)
RETRY_CODES = ("operator_suspended",)


class RevocationListUnavailable(ServiceUnavailable):
    code = "offline_revocations_unavailable"
    title = "The central bank's revocation list is unavailable for a moment"
    retry_after = 5


def reference(device_id: str) -> str:
    """One report per device: queueing it twice is one job (outbox (kind, reference) unique)."""
    return f"offline-revoke:{device_id}"


def queue_revocation(
    session: Session,
    ctx: OperatorContext,
    *,
    device_id: str,
    serial: str,
    reason: str,
    now: datetime | None = None,
) -> None:
    """Queue the report of a revoked device to the central bank, in the caller's transaction
    (the one that revokes the device's row); `now`: the operation's instant, if it has one."""
    repo.enqueue(
        session,
        kind=KIND,
        reference=reference(device_id),
        payload={"device": device_id, "serial": serial, "reason": reason},
        now=ctx.now() if now is None else now,
    )


def run_revocation(runner: JobRunner, job: OutboxJob) -> None:
    """Report the revocation; the central bank answers the same entry if it has it already."""
    payload = job.payload
    try:
        runner.ctx.central_bank.revoke_offline_device(
            device=str(payload["device"]),
            serial=str(payload["serial"]),
            reason=str(payload["reason"]),
        )
    except RemoteError as exc:
        if exc.status in RETRY_STATUSES or exc.code in RETRY_CODES:
            runner.later(job, min(60.0, 0.5 * 2 ** min(job.attempts, 7)), str(exc))
            return
        # Another operator's device, another serial for a revoked device, a malformed entry:
        # a bug or a tampered row; nothing retrying can fix. Logged and kept as a failed job.
        log.error("offline revocation %s refused: %s", job.reference, exc)
        runner.fail(job, str(exc))
        return
    _forget_freshness(runner.ctx.central_bank)
    runner.finish(job)


JOBS: dict[str, JobHandler] = {KIND: run_revocation}


# ------------------------------------------------------------------ the signed list


class _Remembered:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.signed: dict[str, Any] | None = None
        self.fetched_at = 0.0  # time.monotonic() of the last successful fetch


# Per central bank client (one per operator state), so two operators in one process (tests,
# the scenario engine) never hand over each other's list.
_REMEMBERED: weakref.WeakKeyDictionary[CentralBankClient, _Remembered] = weakref.WeakKeyDictionary()
_REMEMBERED_LOCK = threading.Lock()


def _remembered(client: CentralBankClient) -> _Remembered:
    with _REMEMBERED_LOCK:
        found = _REMEMBERED.get(client)
        if found is None:
            found = _REMEMBERED[client] = _Remembered()
        return found


def _forget_freshness(client: CentralBankClient) -> None:
    """A revocation was just reported: the next `latest_list` fetches, whatever `max_age`."""
    _remembered(client).fetched_at = 0.0


def latest_list(ctx: OperatorContext, *, max_age: float = 0.0) -> dict[str, Any]:
    """The central bank's signed revocation list ({"document", "signature"}), verified.

    Fetched on every call unless one was fetched less than `max_age` seconds ago (a busy
    sync path may allow a second or so). If the central bank is unreachable, the last good
    list is returned; if there never was one, `RevocationListUnavailable` (503). A list
    with a lower version than one already seen (a central bank restored from an old backup)
    is not handed over: the newer one stays."""
    memory = _remembered(ctx.central_bank)
    with memory.lock:
        if memory.signed is not None and time.monotonic() - memory.fetched_at < max_age:
            return memory.signed
    try:
        fetched = ctx.central_bank.offline_revocations()
    except (RemoteUnavailable, RemoteError) as exc:
        with memory.lock:
            if memory.signed is not None:
                log.warning("revocation list: central bank unreachable, the last one used: %s", exc)
                return memory.signed
        raise RevocationListUnavailable(
            f"the central bank's revocation list could not be fetched ({exc}) and none was "
            "fetched before"
        ) from exc
    revoked_devices(fetched, ctx.central_bank_public_key)  # raises if it does not verify
    with memory.lock:
        if memory.signed is None or _version(fetched) >= _version(memory.signed):
            memory.signed = fetched
        memory.fetched_at = time.monotonic()
        return memory.signed


def revoked_devices(signed_list: dict[str, Any], central_bank_public_key: str) -> set[str]:
    """The device ids a signed revocation list names, once its signature verifies with the
    central bank's key (`BadCentralBankDocument` otherwise)."""
    if not isinstance(signed_list, dict) or not verify_document(
        central_bank_public_key, signed_list
    ):
        raise BadCentralBankDocument("the revocation list is not signed by the central bank")
    document = signed_list["document"]
    entries = document.get("revoked")
    if document.get("type") != LIST_TYPE or not isinstance(entries, list):
        raise BadCentralBankDocument("the central bank's document is not a revocation list")
    return {str(entry["device"]) for entry in entries}


def _version(signed_list: dict[str, Any]) -> int:
    return int(signed_list["document"]["version"])
