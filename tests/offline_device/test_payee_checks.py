"""What a payee's secure element checks offline before it accepts a payment (`receive`), and
that it logs an accepted payment without adding it to its purse."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cbdc import offline
from cbdc.crypto import SigningKey
from cbdc.offline import OfflineRefusal
from cbdc.tokens import sign_document
from tests.offline_device.pki import CURRENCY, LIMITS, Network, after, operator_certificate
from wallets.offline.secure_element import SecureElement


@pytest.fixture
def net() -> Network:
    return Network()


def refused(code: str, payee: SecureElement, payment: dict[str, Any], hours: float = 1) -> None:
    before = payee.state()
    with pytest.raises(OfflineRefusal) as caught:
        payee.receive(payment, after(hours))
    assert caught.value.code == code, caught.value
    assert payee.state() == before  # a refusal leaves the payee's log as it was


def signed_by_sealed_key(se: SecureElement, **fields: Any) -> dict[str, Any]:
    """A transfer signed with a device's key taken from its sealed state (a compromised chip
    that ignores its own rules), with the payment's certificates."""
    key = SigningKey.from_private_bytes(se.state()["sealed_key"])
    document = offline.transfer(
        payer=se.device_id,
        payee=fields["payee"],
        payee_wallet=fields["payee_wallet"],
        counter=fields.get("counter", se.counter + 1),
        amount=fields["amount"],
        currency=fields.get("currency", CURRENCY),
        at=after(1),
        prev=offline.GENESIS,
    )
    return {
        "transfer": document,
        "signature": key.sign_json(document),
        "certificate": se.certificate,
        "operator_certificate": se.operator_certificate,
    }


def test_an_honest_payment_is_accepted_and_logged_not_added_to_the_purse(net: Network) -> None:
    payer, payee = net.device("AAAA", funded=300_00), net.device("BBBB")
    payment = payer.pay(payee.device_id, payee.wallet_id, 120_00, after(1))
    assert set(payment) == {"transfer", "signature", "certificate", "operator_certificate"}
    document = payee.receive(payment, after(1))
    assert document == payment["transfer"]
    assert document["payer"] == payer.device_id and document["counter"] == 1
    assert payer.purse == 180_00 and payer.counter == 1
    assert payee.purse == 0  # received value is credited online at sync
    view = payee.view(after(1))
    assert [line["hash"] for line in view["unsynced_received"]] == [offline.transfer_hash(document)]
    assert payee.sync_batch(after(2))["batch"]["received"] == [payment]


def test_a_payment_within_one_operator_is_accepted(net: Network) -> None:
    payer, payee = net.device("AAAA", funded=100_00), net.device("AAAA")
    payee.receive(payer.pay(payee.device_id, payee.wallet_id, 1, after(1)), after(1))
    assert payee.view()["unsynced_received"][0]["amount"] == 1


def test_a_device_certificate_signed_by_another_key_is_a_bad_chain(net: Network) -> None:
    payer, payee = net.device("AAAA", funded=100_00), net.device("BBBB")
    payment = payer.pay(payee.device_id, payee.wallet_id, 10_00, after(1))
    payment["certificate"] = sign_document(
        SigningKey.generate(), payment["certificate"]["document"]
    )
    refused(offline.BAD_CHAIN, payee, payment)


def test_an_operator_certificate_not_the_central_banks_is_a_bad_chain(net: Network) -> None:
    payer, payee = net.device("AAAA", funded=100_00), net.device("BBBB")
    payment = payer.pay(payee.device_id, payee.wallet_id, 10_00, after(1))
    # a rogue "central bank" certifies the real operator key: the payee knows the real one
    rogue = operator_certificate(SigningKey.generate(), "AAAA", net.operators["AAAA"].key)
    refused(offline.BAD_CHAIN, payee, {**payment, "operator_certificate": rogue})
    # a whole rogue chain (own operator key, own device certificate) fails the same way
    operator_key = SigningKey.generate()
    fake = operator_certificate(SigningKey.generate(), "AAAA", operator_key)
    certificate = sign_document(operator_key, payment["certificate"]["document"])
    refused(
        offline.BAD_CHAIN,
        payee,
        {**payment, "operator_certificate": fake, "certificate": certificate},
    )


def test_a_device_certificate_of_another_operator_is_a_bad_chain(net: Network) -> None:
    payer, payee = net.device("AAAA", funded=100_00), net.device("BBBB")
    payment = payer.pay(payee.device_id, payee.wallet_id, 10_00, after(1))
    # operator BBBB (genuine) signs a certificate for a device id routed to AAAA
    document = payment["certificate"]["document"]
    forged = sign_document(net.operators["BBBB"].key, document)
    refused(
        offline.BAD_CHAIN,
        payee,
        {
            **payment,
            "certificate": forged,
            "operator_certificate": net.operators["BBBB"].certificate,
        },
    )


def test_malformed_certificates_are_a_bad_chain(net: Network) -> None:
    payer, payee = net.device("AAAA", funded=100_00), net.device("BBBB")
    payment = payer.pay(payee.device_id, payee.wallet_id, 10_00, after(1))
    refused(offline.BAD_CHAIN, payee, {**payment, "certificate": None})
    refused(offline.BAD_CHAIN, payee, {**payment, "operator_certificate": "x"})
    refused(offline.MALFORMED, payee, "not a payment")  # type: ignore[arg-type]


def test_a_revoked_payer_is_refused_once_the_list_naming_it_is_synced(net: Network) -> None:
    payer, payee = net.device("AAAA", funded=300_00), net.device("BBBB")
    first = payer.pay(payee.device_id, payee.wallet_id, 10_00, after(1))
    second = payer.pay(payee.device_id, payee.wallet_id, 10_00, after(1))
    payee.receive(first, after(1))  # before the list names it: accepted in good faith
    net.revoke(payer)
    payee.apply_sync(net.answer(payee.sync_batch(after(2)), after(2)))
    assert payer.device_id in payee.revoked_devices
    refused(offline.REVOKED, payee, second, hours=3)


def test_a_counter_received_twice_is_refused(net: Network) -> None:
    payer, payee = net.device("AAAA", funded=100_00), net.device("BBBB")
    payment = payer.pay(payee.device_id, payee.wallet_id, 10_00, after(1))
    payee.receive(payment, after(1))
    refused(offline.COUNTER_REUSED, payee, copy.deepcopy(payment))


def test_a_clones_payment_with_a_counter_already_received_is_refused(net: Network) -> None:
    payer, payee = net.device("AAAA", funded=100_00), net.device("BBBB")
    clone = payer.clone()
    payee.receive(payer.pay(payee.device_id, payee.wallet_id, 10_00, after(1)), after(1))
    twin = clone.pay(payee.device_id, payee.wallet_id, 20_00, after(1))
    assert twin["transfer"]["counter"] == 1
    refused(offline.COUNTER_REUSED, payee, twin)


def test_counters_seen_survive_a_sync(net: Network) -> None:
    payer, payee = net.device("AAAA", funded=100_00), net.device("BBBB")
    payment = payer.pay(payee.device_id, payee.wallet_id, 10_00, after(1))
    payee.receive(payment, after(1))
    payee.apply_sync(net.answer(payee.sync_batch(after(2)), after(2)))
    assert payee.view()["unsynced_received"] == []
    refused(offline.COUNTER_REUSED, payee, payment, hours=3)


def test_a_payment_over_the_payers_per_payment_limit_is_refused(net: Network) -> None:
    payer, payee = net.device("AAAA", funded=LIMITS.purse_cap), net.device("BBBB")
    over = signed_by_sealed_key(
        payer, payee=payee.device_id, payee_wallet=payee.wallet_id, amount=LIMITS.per_payment + 1
    )
    refused(offline.OVER_LIMIT, payee, over)
    at_limit = signed_by_sealed_key(
        payer, payee=payee.device_id, payee_wallet=payee.wallet_id, amount=LIMITS.per_payment
    )
    payee.receive(at_limit, after(1))


def test_a_tampered_amount_breaks_the_signature(net: Network) -> None:
    payer, payee = net.device("AAAA", funded=100_00), net.device("BBBB")
    payment = payer.pay(payee.device_id, payee.wallet_id, 10_00, after(1))
    payment["transfer"]["amount"] = 90_00
    refused(offline.BAD_SIGNATURE, payee, payment)


def test_a_payment_to_another_device_or_wallet_is_refused(net: Network) -> None:
    payer, payee, other = (net.device("AAAA", funded=100_00), net.device("BBBB"), net.device())
    to_other = payer.pay(other.device_id, other.wallet_id, 10_00, after(1))
    refused(offline.WRONG_PAYEE, payee, to_other)
    wrong_wallet = payer.pay(payee.device_id, other.wallet_id, 10_00, after(1))
    refused(offline.WRONG_PAYEE, payee, wrong_wallet)


def test_a_payment_in_another_currency_is_refused(net: Network) -> None:
    payer, payee = net.device("AAAA", funded=100_00), net.device("BBBB")
    usd = signed_by_sealed_key(
        payer, payee=payee.device_id, payee_wallet=payee.wallet_id, amount=1, currency="USD"
    )
    refused(offline.WRONG_CURRENCY, payee, usd)


def test_a_payment_from_an_expired_certificate_is_refused(net: Network) -> None:
    payer, payee = net.device("AAAA", funded=100_00), net.device("BBBB")
    payment = payer.pay(payee.device_id, payee.wallet_id, 10_00, after(1))
    refused(offline.EXPIRED, payee, payment, hours=24 * (offline.CERTIFICATE_DAYS + 1))
