"""The device SDK end to end: registration, funding (replays, missed records), defunding,
sync in either order, reads, and a revoked device refused offline once the list reaches
its payees."""

from __future__ import annotations

from typing import Any

import pytest

from cbdc import offline
from cbdc.clock import utcnow
from cbdc.crypto import SigningKey
from cbdc.http import RemoteError, RemoteUnavailable
from cbdc.offline import OfflineRefusal
from cbdc.tokens import verify_document
from operators.offline import revocations
from tests.offline_sdk.helpers import device
from wallets.client import RetryPolicy
from wallets.offline.client import OfflineClient
from wallets.offline.secure_element import SecureElement


def test_register_installs_the_certificate_and_is_idempotent(network: Any) -> None:
    phone = device(network)
    se, registration = phone.se, None
    assert se.installed and offline.operator_of(se.device_id) == "BKA1"
    assert se.wallet_id == phone.wallet.wallet_id
    limits = network.state("BKA1").ctx.policy.offline_limits(4)
    assert se.limits == limits
    registration = phone.client.register(se, "phone")  # the same key again: the same device
    assert registration.replayed and registration.device_id == se.device_id
    assert registration.limits.per_payment == limits.per_payment
    assert registration.purse_balance == 0
    assert registration.central_bank_public_key == network.cb_key.public_key


def test_an_operator_naming_another_central_bank_is_refused(network: Any) -> None:
    wallet = network.open_wallet("BKA1")
    stranger = SigningKey.generate().public_key
    client = OfflineClient(wallet, central_bank_public_key=stranger)
    se = SecureElement.generate(network.currency)
    with pytest.raises(OfflineRefusal) as caught:
        client.register(se, "phone")
    assert caught.value.code == offline.BAD_CHAIN
    assert not se.installed


def test_fund_applies_the_signed_record_once(network: Any) -> None:
    phone = device(network, load=1_000_00)
    order = phone.client.funding_order(phone.se, 300_00)
    result = phone.client.submit_funding(phone.se, order)
    assert (result.purse_balance, result.wallet_balance) == (300_00, 700_00)
    assert result.applied == [1] and not result.replayed
    assert phone.se.purse == 300_00
    assert verify_document(phone.se.operator_certificate["document"]["public_key"], result.funding)
    again = phone.client.submit_funding(phone.se, order)  # the same order again: a replay
    assert again.replayed and again.applied == []
    assert again.funding == result.funding
    assert phone.se.purse == 300_00
    assert phone.wallet.balance().balance == 700_00
    # The same nonce in another order is not a replay: refused, nothing moves.
    with pytest.raises(RemoteError) as caught:
        phone.client.fund(phone.se, 1_00, nonce=order["order"]["nonce"])
    assert (caught.value.status, caught.value.code) == (409, "idempotency_key_reused")
    assert phone.se.purse == 300_00 and phone.wallet.balance().balance == 700_00


def test_fund_catches_up_on_records_whose_answer_was_lost(network: Any) -> None:
    phone = device(network)
    lost = phone.se.clone()  # the first answer reaches only this copy: the SE misses seq 1
    phone.client.fund(lost, 100_00)
    result = phone.client.fund(phone.se, 50_00)
    assert result.applied == [1, 2]
    assert phone.se.purse == 150_00 == result.purse_balance


def test_defund_returns_the_purse_to_the_wallet(network: Any) -> None:
    phone = device(network, load=1_000_00, fund=400_00)
    result = phone.client.defund(phone.se, 150_00)
    assert result.credited == 150_00
    assert (result.purse_balance, result.wallet_balance) == (250_00, 750_00)
    assert phone.se.purse == 250_00
    # The defund stays in the device's log until a sync covers it: a duplicate there.
    synced = phone.client.sync(phone.se)
    assert [s.outcome for s in synced.sent] == ["duplicate"]
    assert phone.wallet.balance().balance == 750_00
    assert phone.se.view()["unsynced_sent"] == []


@pytest.mark.parametrize("payee_first", [True, False])
def test_an_offline_payment_settles_whichever_side_syncs_first(
    network: Any, payee_first: bool
) -> None:
    alice = device(network, "BKA1", fund=300_00)
    bob = device(network, "BKB1", load=0)
    now = utcnow()
    payment = alice.se.pay(bob.id, bob.se.wallet_id, 120_00, now)
    bob.se.receive(payment, now)
    order = [bob, alice] if payee_first else [alice, bob]
    results = {}
    for holder in order:
        results[holder.id] = holder.client.sync(holder.se)
        network.run_jobs()
    [sent] = results[alice.id].sent
    [received] = results[bob.id].received
    assert sent.counter == 1 and sent.hash == received.hash
    assert received.payer == alice.id and received.counter == 1
    assert alice.se.view()["unsynced_sent"] == [] and bob.se.view()["unsynced_received"] == []
    assert alice.se.payments_since_sync == 0
    network.run_jobs()
    assert bob.wallet.balance().balance == 120_00
    assert alice.client.device(alice.id).purse_balance == 180_00


def test_reads_are_the_wallets_own(network: Any) -> None:
    phone = device(network, fund=100_00)
    view = phone.client.device(phone.id)
    assert (view.device_id, view.wallet_id, view.status) == (
        phone.id,
        phone.wallet.wallet_id,
        "active",
    )
    assert view.purse_balance == 100_00 and len(view.fundings) == 1
    other = device(network, name="other")
    with pytest.raises(RemoteError) as caught:
        other.client.device(phone.id)
    assert caught.value.status == 403
    listed = phone.client.revocations()
    assert listed.document.version == 0 and listed.devices == set()


def test_a_cloned_device_is_revoked_and_refused_offline_at_another_operator(
    network: Any,
) -> None:
    alice = device(network, "BKA1", fund=300_00)
    clone = alice.se.clone()
    bob = device(network, "BKB1", load=0, name="bob")
    carol = device(network, "BKA1", load=0, name="carol")
    now = utcnow()
    bob.se.receive(alice.se.pay(bob.id, bob.se.wallet_id, 100_00, now), now)
    carol.se.receive(clone.pay(carol.id, carol.se.wallet_id, 100_00, now), now)  # counter 1 again
    alice.client.sync(alice.se)
    carol.client.sync(carol.se)  # the same (payer, counter) under another hash
    network.run_jobs()  # the offline_revoke job reports it to the central bank
    assert alice.client.device(alice.id).status == "revoked"
    # an operator hands over a list at most a second old (fetched for bob's registration a
    # moment ago): let that second pass
    revocations._forget_freshness(network.state("BKB1").ctx.central_bank)
    listed = bob.client.revocations()
    assert alice.id in listed.devices and listed.document.version == 1
    # Bob's device learns it at its next sync and refuses Alice's device offline from then on.
    bob.client.sync(bob.se)
    assert alice.id in bob.se.revoked_devices
    with pytest.raises(OfflineRefusal) as caught:
        bob.se.receive(clone.pay(bob.id, bob.se.wallet_id, 10_00, utcnow()), utcnow())
    assert caught.value.code == offline.REVOKED
    # A device registered from now on gets the list with its certificate: it refuses the
    # revoked payer before its first sync.
    dave = device(network, "BKB1", load=0, name="dave")
    assert alice.id in dave.se.revoked_devices
    with pytest.raises(OfflineRefusal) as caught:
        dave.se.receive(clone.pay(dave.id, dave.se.wallet_id, 10_00, utcnow()), utcnow())
    assert caught.value.code == offline.REVOKED
    forged = {**listed.model_dump(), "signature": SigningKey.generate().sign_json({})}
    with pytest.raises(OfflineRefusal) as caught:
        dave.se.apply_revocations(forged)
    assert caught.value.code == offline.BAD_SIGNATURE


class LosesFirstAnswers:
    """The wallet's signed client, but the first `n` POST answers are lost on the way back
    (the operator did the work): the SDK retries with the same body."""

    def __init__(self, inner: Any, n: int) -> None:
        self.inner, self.n, self.bodies = inner, n, []  # type: ignore[var-annotated]

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        answer = self.inner.request(method, path, body, **kwargs)
        if method == "POST":
            self.bodies.append(body)
            if self.n > 0:
                self.n -= 1
                raise RemoteUnavailable(f"{path}: answer lost", status=503)
        return answer


@pytest.mark.parametrize("call", ["fund", "defund", "sync"])
def test_a_lost_answer_is_retried_with_the_same_body_and_moves_money_once(
    network: Any, call: str
) -> None:
    phone = device(network, load=1_000_00, fund=300_00)
    now = utcnow()
    other = device(network, load=0, name="other")
    other.se.receive(phone.se.pay(other.id, other.se.wallet_id, 100_00, now), now)
    phone.wallet.retry = RetryPolicy(attempts=3, backoff=0.0)
    lossy = LosesFirstAnswers(phone.wallet.client, 1)
    phone.wallet.client = lossy  # type: ignore[assignment]
    # (SE purse, the operator's purse: the offline payment reaches it at sync, wallet)
    if call == "fund":
        assert phone.client.fund(phone.se, 50_00).replayed
        expected = (250_00, 350_00, 650_00)
    elif call == "defund":
        assert phone.client.defund(phone.se, 50_00).credited == 50_00
        expected = (150_00, 250_00, 750_00)
    else:
        assert [s.counter for s in phone.client.sync(phone.se).sent] == [1]
        expected = (200_00, 200_00, 700_00)
    assert len(lossy.bodies) == 2 and lossy.bodies[0] == lossy.bodies[1]
    purse = phone.client.device(phone.id).purse_balance
    assert (phone.se.purse, purse, phone.wallet.balance().balance) == expected
