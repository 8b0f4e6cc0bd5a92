"""The local device store: files, round trip, names, and the two attacks (clone, rollback)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from cbdc import offline
from tests.offline_device.pki import Network, after
from wallets.offline.secure_element import SecureElement
from wallets.offline.store import (
    HISTORY,
    DeviceExists,
    DeviceStore,
    DeviceStoreError,
    UnknownDevice,
)


@pytest.fixture
def net() -> Network:
    return Network()


def keep(store: DeviceStore, name: str, se: SecureElement) -> None:
    store.add(name, se, wallet_id=se.wallet_id, operator="AAAA", operator_url="http://a.test")


def test_a_device_round_trips_through_a_0600_file(tmp_path: Path, net: Network) -> None:
    store = DeviceStore(tmp_path)
    se = net.device(funded=50_00)
    keep(store, "phone", se)
    path = tmp_path / "devices" / "phone.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = DeviceStore(tmp_path).get("phone")
    assert (stored.name, stored.wallet_id, stored.operator, stored.operator_url) == (
        "phone",
        se.wallet_id,
        "AAAA",
        "http://a.test",
    )
    assert stored.device_id == se.device_id and stored.history == []
    opened = stored.element()
    assert opened.state() == se.state() and opened.purse == 50_00
    assert json.loads(path.read_text())["state"]["sealed_key"] == se.state()["sealed_key"]
    assert store.names() == ["phone"] and store.find(se.device_id).name == "phone"
    assert not list((tmp_path / "devices").glob(".*"))  # no temporary file left behind


def test_saving_pushes_the_previous_state_and_keeps_twenty(tmp_path: Path, net: Network) -> None:
    store = DeviceStore(tmp_path)
    se, payee = net.device(funded=1_000_00), net.device("BBBB")
    keep(store, "phone", se)
    store.save("phone", se)  # unchanged: nothing pushed
    assert store.get("phone").history == []
    for hour in range(HISTORY + 5):
        se.pay(payee.device_id, payee.wallet_id, 1, after(hour))
        se.apply_sync(net.answer(se.sync_batch(after(hour)), after(hour)))  # stay allowed
        store.save("phone", se)
    stored = store.get("phone")
    assert len(stored.history) == HISTORY
    assert [s["counter"] for s in stored.history] == list(range(5, HISTORY + 5))
    assert stat.S_IMODE((tmp_path / "devices" / "phone.json").stat().st_mode) == 0o600
    with pytest.raises(DeviceStoreError):
        store.save("phone", payee)  # another device's secure element


def test_rollback_restores_the_state_of_n_payments_ago(tmp_path: Path, net: Network) -> None:
    store = DeviceStore(tmp_path)
    se, bob, carol = net.device(funded=100_00), net.device("BBBB"), net.device("BBBB")
    keep(store, "phone", se)
    first = se.pay(bob.device_id, bob.wallet_id, 10_00, after(1))
    store.save("phone", se)
    se.apply_funding(net.funding(se.device_id, 5_00))  # a change that is not a payment
    store.save("phone", se)
    second = se.pay(bob.device_id, bob.wallet_id, 20_00, after(2))
    store.save("phone", se)
    restored = store.rollback("phone", 1).element()
    # as it was just before the last payment: after the first payment and the funding
    assert (restored.counter, restored.purse) == (1, 95_00)
    again = restored.pay(carol.device_id, carol.wallet_id, 95_00, after(3))
    assert again["transfer"]["counter"] == second["transfer"]["counter"] == 2
    assert again["transfer"]["prev"] == second["transfer"]["prev"]
    assert again["transfer"]["prev"] == offline.transfer_hash(first["transfer"])
    store.save("phone", restored)
    assert store.rollback("phone", 2).element().counter == 0
    with pytest.raises(DeviceStoreError):
        store.rollback("phone", 1)  # nothing older is kept
    for bad in (0, -1):
        with pytest.raises(DeviceStoreError):
            store.rollback("phone", bad)


def test_clone_copies_the_sealed_state_under_a_new_name(tmp_path: Path, net: Network) -> None:
    store = DeviceStore(tmp_path)
    se = net.device(funded=30_00)
    keep(store, "phone", se)
    clone = store.clone("phone", "twin")
    assert clone.state == store.get("phone").state and clone.history == []
    assert clone.wallet_id == se.wallet_id and clone.device_id == se.device_id
    assert stat.S_IMODE((tmp_path / "devices" / "twin.json").stat().st_mode) == 0o600
    assert store.names() == ["phone", "twin"]
    with pytest.raises(DeviceExists):
        store.clone("phone", "twin")


def test_names_are_unique_and_unknown_names_are_clear(tmp_path: Path, net: Network) -> None:
    store = DeviceStore(tmp_path)
    keep(store, "phone", net.device())
    with pytest.raises(DeviceExists, match="already exists"):
        keep(store, "phone", net.device())
    with pytest.raises(UnknownDevice, match="no device 'tablet'") as caught:
        store.get("tablet")
    assert isinstance(caught.value, KeyError)
    assert str(caught.value).startswith("no device 'tablet'")
    for bad in ("../escape", "", "a/b", ".hidden", "x" * 65):
        with pytest.raises(DeviceStoreError, match="bad device name"):
            store.get(bad)
    with pytest.raises(UnknownDevice):
        store.clone("tablet", "t2")
    with pytest.raises(UnknownDevice):
        store.rollback("tablet")
    store.remove("phone")
    assert store.names() == [] and DeviceStore(tmp_path / "empty").all() == []
