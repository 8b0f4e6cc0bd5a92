"""The operator's side of the revocation list: a revoked device queued in the outbox and
reported to the central bank by the worker, and the signed list fetched for syncs (the last
good one kept for when the central bank is away)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from cbdc.crypto import SigningKey
from cbdc.db import transaction
from cbdc.http import RemoteUnavailable
from cbdc.offline import revocation_list as revocation_document
from cbdc.tokens import sign_document
from operators.errors import BadCentralBankDocument
from operators.offline import revocations
from tests.clocks import operator_clock
from tests.offline_revocations.helpers import device_id
from tests.offline_revocations.helpers import revocation_list as central_list


def with_handler(network: Any, code: str = "BKA1") -> Any:
    """The operator's state, its runner knowing `offline_revoke` (the offline area composes
    the handler into operators/state.py; registered here if that has not landed)."""
    state = network.state(code)
    state.runner.handlers.setdefault(revocations.KIND, revocations.JOBS[revocations.KIND])
    return state


def queue(state: Any, device: str, serial: str = "serial-1", reason: str = "overspend") -> None:
    transaction(
        state.factory,
        lambda s: revocations.queue_revocation(
            s, state.ctx, device_id=device, serial=serial, reason=reason
        ),
    )


def jobs(state: Any) -> list[tuple[str, str, str | None]]:
    with state.engine.begin() as conn:
        rows = conn.execute(
            text("SELECT reference, status, last_error FROM outbox WHERE kind = :k ORDER BY id"),
            {"k": revocations.KIND},
        ).all()
    return [(r.reference, r.status, r.last_error) for r in rows]


def test_a_queued_revocation_is_delivered_to_the_central_bank_once(network: Any) -> None:
    state = with_handler(network)
    device = device_id("BKA1")
    queue(state, device)
    queue(state, device)  # queued twice (two detections): one job, one report
    assert [j[:2] for j in jobs(state)] == [(revocations.reference(device), "pending")]
    network.run_jobs()
    assert [j[:2] for j in jobs(state)] == [(revocations.reference(device), "done")]
    listed = central_list(network)["document"]
    assert listed["version"] == 1
    assert [(e["device"], e["operator"], e["serial"], e["reason"]) for e in listed["revoked"]] == [
        (device, "BKA1", "serial-1", "overspend")
    ]
    # The operator's fetched list names it.
    signed = revocations.latest_list(state.ctx)
    assert revocations.revoked_devices(signed, state.ctx.central_bank_public_key) == {device}


def test_a_revocation_waits_out_a_central_bank_outage(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = with_handler(network)
    clock = operator_clock(network)
    device = device_id("BKA1")
    central_bank = state.ctx.central_bank
    real = central_bank.revoke_offline_device

    def unreachable(**_: Any) -> dict[str, Any]:
        raise RemoteUnavailable("central bank down")

    monkeypatch.setattr(central_bank, "revoke_offline_device", unreachable)
    queue(state, device)
    network.run_jobs()
    [(_, status, error)] = jobs(state)
    assert status == "pending" and error is not None and "central bank down" in error
    assert central_list(network)["document"]["version"] == 0

    monkeypatch.setattr(central_bank, "revoke_offline_device", real)
    clock.advance(10)  # the back-off's due time
    network.run_jobs()
    assert [j[1] for j in jobs(state)] == ["done"]
    assert central_list(network)["document"]["revoked"][0]["device"] == device


def test_a_refused_revocation_fails_its_job(network: Any) -> None:
    state = with_handler(network)
    queue(state, device_id("BKB1"))  # not BKA1's device: the central bank refuses it
    network.run_jobs()
    [(_, status, error)] = jobs(state)
    assert status == "failed"
    assert error is not None and "offline_revocation_not_operator" in error
    assert central_list(network)["document"]["version"] == 0


def test_the_last_good_list_is_handed_over_while_the_central_bank_is_away(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = network.state("BKB1").ctx
    central_bank = ctx.central_bank
    real = central_bank.offline_revocations

    def unreachable() -> dict[str, Any]:
        raise RemoteUnavailable("central bank down")

    # Never fetched: no list to hand over, 503 (never an unsigned or empty one).
    monkeypatch.setattr(central_bank, "offline_revocations", unreachable)
    with pytest.raises(revocations.RevocationListUnavailable) as caught:
        revocations.latest_list(ctx)
    assert (caught.value.status, caught.value.code) == (503, "offline_revocations_unavailable")

    monkeypatch.setattr(central_bank, "offline_revocations", real)
    first = revocations.latest_list(ctx)
    assert first["document"]["version"] == 0
    state = with_handler(network, "BKA1")
    device = device_id("BKA1")
    queue(state, device)
    network.run_jobs()
    second = revocations.latest_list(ctx)
    assert second["document"]["version"] == 1

    monkeypatch.setattr(central_bank, "offline_revocations", unreachable)
    assert revocations.latest_list(ctx) == second  # the last good one
    assert revocations.revoked_devices(second, ctx.central_bank_public_key) == {device}


def test_a_recent_list_is_reused_within_max_age(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = network.state("BKB1").ctx
    calls: list[int] = []
    real = ctx.central_bank.offline_revocations

    def counted() -> dict[str, Any]:
        calls.append(1)
        return real()  # type: ignore[no-any-return]

    monkeypatch.setattr(ctx.central_bank, "offline_revocations", counted)
    revocations.latest_list(ctx)
    revocations.latest_list(ctx, max_age=60)
    assert len(calls) == 1
    revocations.latest_list(ctx)  # max_age 0: always fetched
    assert len(calls) == 2


def test_an_older_list_does_not_replace_a_newer_one(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = with_handler(network)
    queue(state, device_id("BKA1"))
    network.run_jobs()
    ctx = state.ctx
    newer = revocations.latest_list(ctx)
    older = sign_document(
        network.cb_key,
        revocation_document(version=0, issued_at=ctx.now(), revoked=[]),
    )
    monkeypatch.setattr(ctx.central_bank, "offline_revocations", lambda: older)
    assert revocations.latest_list(ctx) == newer


def test_a_list_not_signed_by_the_central_bank_is_refused(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = network.state("BKA1").ctx
    key = ctx.central_bank_public_key
    forged = sign_document(
        SigningKey.generate(),
        revocation_document(version=9, issued_at=ctx.now(), revoked=[]),
    )
    with pytest.raises(BadCentralBankDocument):
        revocations.revoked_devices(forged, key)
    not_a_list = sign_document(network.cb_key, {"type": "operator-certificate", "revoked": []})
    with pytest.raises(BadCentralBankDocument):
        revocations.revoked_devices(not_a_list, key)
    tampered = revocations.latest_list(ctx)
    tampered = {**tampered, "document": {**tampered["document"], "revoked": [{"device": "X"}]}}
    with pytest.raises(BadCentralBankDocument):
        revocations.revoked_devices(tampered, key)
    # A forged answer is never remembered or handed over.
    monkeypatch.setattr(ctx.central_bank, "offline_revocations", lambda: forged)
    with pytest.raises(BadCentralBankDocument):
        revocations.latest_list(ctx)
