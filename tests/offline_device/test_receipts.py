"""Malformed documents a secure element takes online (funding records, sync answers), naive
clocks, and the sealed state it refuses to open."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from cbdc import offline
from cbdc.offline import OfflineRefusal
from cbdc.tokens import sign_document
from tests.offline_device.pki import CURRENCY, T0, Network, after
from wallets.offline.secure_element import SecureElement


@pytest.fixture
def net() -> Network:
    return Network()


def refused(code: str, se: SecureElement, answer: Any) -> None:
    before = se.state()
    with pytest.raises(OfflineRefusal) as caught:
        se.apply_sync(answer)
    assert caught.value.code == code, caught.value
    assert se.state() == before


@pytest.mark.parametrize(
    "change",
    [
        {"counter": -1},
        {"counter": "1"},
        {"counter": True},
        {"at": "yesterday"},
        {"at": "2026-03-02T12:00:00"},  # no zone
        {"type": "offline-sync"},
    ],
)
def test_a_signed_ack_with_bad_fields_is_malformed(net: Network, change: dict[str, Any]) -> None:
    se = net.device()
    good = net.answer(se.sync_batch(after(1)), after(1))
    key = net.operators["AAAA"].key
    refused(
        offline.MALFORMED,
        se,
        {**good, "ack": sign_document(key, {**good["ack"]["document"], **change})},
    )


@pytest.mark.parametrize(
    "change",
    [
        {"version": -1},
        {"version": None},
        {"revoked": [{"serial": "S"}]},
        {"revoked": [{"device": 7}]},
        {"revoked": None},
        {"type": "offline-sync-ack"},
    ],
)
def test_a_signed_list_with_bad_fields_is_malformed(net: Network, change: dict[str, Any]) -> None:
    se = net.device()
    good = net.answer(se.sync_batch(after(1)), after(1))
    listed = sign_document(net.cb, {**good["revocations"]["document"], **change})
    refused(offline.MALFORMED, se, {**good, "revocations": listed})


def test_an_answer_without_a_received_list_keeps_the_received_payments(net: Network) -> None:
    se, payer = net.device(), net.device("BBBB", funded=10_00)
    se.receive(payer.pay(se.device_id, se.wallet_id, 1_00, after(1)), after(1))
    answer = net.answer(se.sync_batch(after(2)), after(2))
    for received in (None, "all", [{"hash": 5}, "x"]):
        se.apply_sync({**answer, "received": received})
        assert len(se.view()["unsynced_received"]) == 1  # sent again next time: a duplicate
    se.apply_sync(answer)
    assert se.view()["unsynced_received"] == []


@pytest.mark.parametrize(
    "change",
    [{"amount": 0}, {"amount": "5"}, {"seq": 0}, {"seq": True}, {"type": "offline-transfer"}],
)
def test_a_signed_funding_record_with_bad_fields_is_malformed(
    net: Network, change: dict[str, Any]
) -> None:
    se = net.device()
    record = {**net.funding(se.device_id, 10_00)["document"], **change}
    signed = sign_document(net.operators["AAAA"].key, record)
    before = se.state()
    with pytest.raises(OfflineRefusal) as caught:
        se.apply_funding(signed)
    assert caught.value.code == offline.MALFORMED
    assert se.state() == before


def test_a_naive_now_is_a_programming_error(net: Network) -> None:
    se, payee = net.device(funded=10_00), net.device("BBBB")
    naive = datetime(2026, 3, 2, 12, 0)
    with pytest.raises(ValueError, match="time zone"):
        se.pay(payee.device_id, payee.wallet_id, 1, naive)
    with pytest.raises(ValueError, match="time zone"):
        se.defund(1, naive)
    with pytest.raises(ValueError, match="time zone"):
        se.sync_batch(naive)
    with pytest.raises(ValueError, match="time zone"):
        payee.receive({}, naive)


def test_a_sealed_state_that_does_not_hold_together_is_refused(net: Network) -> None:
    se, other = net.device(), net.device()
    with pytest.raises(OfflineRefusal, match="version"):
        SecureElement.from_state({**se.state(), "version": 99})
    with pytest.raises(OfflineRefusal, match="does not match"):
        SecureElement.from_state({**se.state(), "sealed_key": other.state()["sealed_key"]})


def test_view_before_and_after_install(net: Network) -> None:
    se = SecureElement.generate(CURRENCY)
    view = se.view()
    assert view["installed"] is False and view["certificate_status"] == "not installed"
    assert "sealed_key" not in view and "device" not in view
    installed = net.device(funded=10_00)
    view = installed.view(T0)
    assert view["device"] == installed.device_id and view["operator"] == "AAAA"
    assert view["purse"] == 10_00 and view["counter"] == 0 and view["fundings"] == 1
    assert view["must_sync"] is False and view["revocations_version"] is None
    assert view["last_sync_at"] == T0.isoformat() and view["last_hash"] == offline.GENESIS
    assert installed.must_sync(T0) is None
