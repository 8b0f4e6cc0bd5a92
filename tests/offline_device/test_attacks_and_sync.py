"""The two attacks (a cloned secure element, a rolled-back one) and the sync: what a batch
carries, what the device takes from the operator's answer, and the answers it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from cbdc import offline
from cbdc.crypto import SigningKey, verify_json
from cbdc.offline import OfflineRefusal
from cbdc.tokens import sign_document
from tests.offline_device.pki import Network, after
from wallets.offline.secure_element import SecureElement


@pytest.fixture
def net() -> Network:
    return Network()


def chain(transfers: list[dict[str, Any]]) -> list[str]:
    """Each transfer's `prev` must be the hash of the one before (GENESIS for the first)."""
    previous = offline.GENESIS
    for document in transfers:
        assert document["prev"] == previous
        previous = offline.transfer_hash(document)
    return [offline.transfer_hash(d) for d in transfers]


def test_the_sealed_state_holds_the_key_and_nothing_else_exports_it(net: Network) -> None:
    se = net.device(funded=10_00)
    sealed = se.state()["sealed_key"]
    assert SigningKey.from_private_bytes(sealed).public_key == se.public_key
    exported = [se.view(after(1)), se.sync_batch(after(1)), se.certificate]
    assert all(sealed not in repr(item) for item in exported)
    assert not any(sealed in repr(getattr(se, name, None)) for name in dir(se) if name[0] != "_")


def test_a_clone_signs_a_second_transfer_with_the_same_counter(net: Network) -> None:
    payer, bob, carol = net.device(funded=100_00), net.device("BBBB"), net.device("BBBB")
    payer.pay(bob.device_id, bob.wallet_id, 10_00, after(1))
    clone = payer.clone()
    assert clone.state() == payer.state()
    to_bob = payer.pay(bob.device_id, bob.wallet_id, 90_00, after(2))
    to_carol = clone.pay(carol.device_id, carol.wallet_id, 90_00, after(2))
    first, second = to_bob["transfer"], to_carol["transfer"]
    assert (
        (first["payer"], first["counter"])
        == (second["payer"], second["counter"])
        == (
            payer.device_id,
            2,
        )
    )
    assert first["prev"] == second["prev"]  # both continue the same chain
    assert offline.transfer_hash(first) != offline.transfer_hash(second)
    bob.receive(to_bob, after(2))
    carol.receive(to_carol, after(2))  # neither payee can tell offline: the operator will
    sent = [s["transfer"] for s in payer.sync_batch(after(3))["batch"]["sent"]]
    cloned = [s["transfer"] for s in clone.sync_batch(after(3))["batch"]["sent"]]
    assert chain(sent)[0] == chain(cloned)[0] and sent[1] != cloned[1]


def test_a_rolled_back_device_reuses_its_counter(net: Network) -> None:
    payer, bob, carol = net.device(funded=100_00), net.device("BBBB"), net.device("BBBB")
    saved = payer.state()  # a memory image taken before the payment
    to_bob = payer.pay(bob.device_id, bob.wallet_id, 100_00, after(1))
    restored = SecureElement.from_state(saved)
    assert restored.purse == 100_00 and restored.counter == 0
    to_carol = restored.pay(carol.device_id, carol.wallet_id, 100_00, after(2))
    assert to_bob["transfer"]["counter"] == to_carol["transfer"]["counter"] == 1
    assert to_bob["transfer"]["prev"] == to_carol["transfer"]["prev"] == offline.GENESIS
    assert to_bob["transfer"] != to_carol["transfer"]
    carol.receive(to_carol, after(2))


def test_a_sync_batch_carries_the_unsynced_log_signed_by_the_device(net: Network) -> None:
    payer, payee = net.device(funded=100_00), net.device("BBBB")
    incoming = net.device("BBBB", funded=100_00)
    payments = [payer.pay(payee.device_id, payee.wallet_id, n * 1_00, after(n)) for n in (1, 2)]
    defund = payer.defund(5_00, after(3))
    received = incoming.pay(payer.device_id, payer.wallet_id, 7_00, after(3))
    payer.receive(received, after(3))
    before = payer.state()
    signed = payer.sync_batch(after(4))
    assert payer.state() == before  # making a batch changes nothing
    batch = signed["batch"]
    assert verify_json(payer.public_key, batch, signed["signature"])
    assert batch["type"] == "offline-sync" and batch["device"] == payer.device_id
    assert batch["counter"] == 3 and batch["at"] == after(4).isoformat()
    expected = [{"transfer": p["transfer"], "signature": p["signature"]} for p in payments]
    assert batch["sent"] == [*expected, defund]
    assert chain([s["transfer"] for s in batch["sent"]])
    assert offline.is_defund(defund["transfer"])
    assert defund["transfer"]["payee_wallet"] == payer.wallet_id
    assert batch["received"] == [received]
    assert payer.purse == 100_00 - 3_00 - 5_00


def test_apply_sync_drops_what_the_batch_carried_and_keeps_the_rest(net: Network) -> None:
    payer, payee = net.device(funded=100_00), net.device("BBBB")
    incoming = net.device("BBBB", funded=100_00)
    payer.pay(payee.device_id, payee.wallet_id, 1_00, after(1))
    payer.receive(incoming.pay(payer.device_id, payer.wallet_id, 1_00, after(1)), after(1))
    batch = payer.sync_batch(after(2))
    # after the batch was made, and before the answer: one more payment each way
    later = payer.pay(payee.device_id, payee.wallet_id, 2_00, after(3))
    payer.receive(incoming.pay(payer.device_id, payer.wallet_id, 2_00, after(3)), after(3))
    net.revoke(net.device())
    answer = net.answer(batch, after(4))  # the ack covers counter 1 and one received payment
    payer.apply_sync(answer)
    view = payer.view(after(4))
    assert [line["counter"] for line in view["unsynced_sent"]] == [later["transfer"]["counter"]]
    assert [line["amount"] for line in view["unsynced_received"]] == [2_00]
    assert view["payments_since_sync"] == 1
    assert view["last_sync_at"] == after(4).isoformat() and view["revocations_version"] == 1
    assert len(payer.revoked_devices) == 1


def test_an_older_revocation_list_does_not_replace_a_newer_one(net: Network) -> None:
    se, victim = net.device(), net.device()
    old = net.answer(se.sync_batch(after(1)), after(1))
    net.revoke(victim)
    se.apply_sync(net.answer(se.sync_batch(after(2)), after(2)))
    assert se.revoked_devices == {victim.device_id}
    ack = sign_document(
        net.operators["AAAA"].key,
        offline.sync_ack(device=se.device_id, counter=0, at=after(3), revocations_version=0),
    )
    se.apply_sync({**old, "ack": ack})  # a valid ack, with a stale list
    assert se.revoked_devices == {victim.device_id}


def refused(code: str, se: SecureElement, answer: Any) -> None:
    before = se.state()
    with pytest.raises(OfflineRefusal) as caught:
        se.apply_sync(answer)
    assert caught.value.code == code, caught.value
    assert se.state() == before


def test_answers_the_device_refuses(net: Network) -> None:
    se, other = net.device(funded=10_00), net.device()
    payee = net.device("BBBB")
    se.pay(payee.device_id, payee.wallet_id, 1_00, after(1))
    good = net.answer(se.sync_batch(after(2)), after(2))
    key = net.operators["AAAA"].key
    ack = good["ack"]["document"]
    forged = {**good, "ack": {**good["ack"], "document": {**ack, "counter": 5}}}
    refused(offline.BAD_SIGNATURE, se, forged)
    by_other_operator = {**good, "ack": sign_document(net.operators["BBBB"].key, ack)}
    refused(offline.BAD_SIGNATURE, se, by_other_operator)
    listed = good["revocations"]["document"]
    fake_list = {**good, "revocations": sign_document(key, listed)}  # not the central bank's
    refused(offline.BAD_SIGNATURE, se, fake_list)
    refused(offline.BAD_SIGNATURE, se, {"ack": good["ack"]})
    refused(offline.BAD_SIGNATURE, se, "nothing")
    for_other = {**good, "ack": sign_document(key, {**ack, "device": other.device_id})}
    refused(offline.MALFORMED, se, for_other)
    ahead = {**good, "ack": sign_document(key, {**ack, "counter": 2})}
    refused(offline.MALFORMED, se, ahead)  # covers a transfer this device never signed
    se.apply_sync(good)
    stale = {**good, "ack": sign_document(key, {**ack, "at": after(1).isoformat()})}
    refused(offline.MALFORMED, se, stale)
