"""What an honest secure element refuses as payer (`pay`, `defund`), when installing a
certificate, and when applying a funding record. A refusal changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from cbdc import offline
from cbdc.crypto import SigningKey
from cbdc.offline import OfflineRefusal
from cbdc.tokens import sign_document
from tests.offline_device.pki import CURRENCY, LIMITS, T0, Network, after
from wallets.offline.secure_element import SecureElement


@pytest.fixture
def net() -> Network:
    return Network()


def refused(code: str, se: SecureElement, action: Callable[[], Any]) -> None:
    before = se.state()
    with pytest.raises(OfflineRefusal) as caught:
        action()
    assert caught.value.code == code, caught.value
    assert se.state() == before


# ------------------------------------------------------------------ paying


def test_a_payment_over_the_per_payment_limit_is_not_signed(net: Network) -> None:
    payer, payee = net.device(funded=LIMITS.purse_cap), net.device("BBBB")
    refused(
        offline.OVER_LIMIT,
        payer,
        lambda: payer.pay(payee.device_id, payee.wallet_id, LIMITS.per_payment + 1, after(1)),
    )
    payer.pay(payee.device_id, payee.wallet_id, LIMITS.per_payment, after(1))


def test_a_payment_beyond_the_purse_is_not_signed(net: Network) -> None:
    payer, payee = net.device(funded=100_00), net.device("BBBB")
    payer.pay(payee.device_id, payee.wallet_id, 60_00, after(1))
    refused(
        offline.INSUFFICIENT_PURSE,
        payer,
        lambda: payer.pay(payee.device_id, payee.wallet_id, 40_01, after(1)),
    )
    payer.pay(payee.device_id, payee.wallet_id, 40_00, after(1))
    assert payer.purse == 0
    refused(offline.INSUFFICIENT_PURSE, payer, lambda: payer.defund(1, after(1)))


@pytest.mark.parametrize("amount", [0, -5, True, 1.5, "10"])
def test_an_amount_that_is_not_a_positive_integer_is_malformed(net: Network, amount: Any) -> None:
    payer, payee = net.device(funded=100_00), net.device("BBBB")
    refused(
        offline.MALFORMED,
        payer,
        lambda: payer.pay(payee.device_id, payee.wallet_id, amount, after(1)),
    )
    refused(offline.MALFORMED, payer, lambda: payer.defund(amount, after(1)))


def test_a_payee_that_is_not_another_device_is_refused(net: Network) -> None:
    payer = net.device(funded=100_00)
    refused(offline.MALFORMED, payer, lambda: payer.pay("nobody", "W", 1, after(1)))
    refused(
        offline.WRONG_PAYEE, payer, lambda: payer.pay(payer.device_id, payer.wallet_id, 1, after(1))
    )


def test_max_payments_since_the_last_sync_forces_a_sync(net: Network) -> None:
    payer, payee = net.device(funded=100_00), net.device("BBBB")
    for _ in range(LIMITS.max_payments):
        payer.pay(payee.device_id, payee.wallet_id, 1_00, after(1))
    assert payer.view(after(1))["must_sync"] is True
    refused(
        offline.MUST_SYNC, payer, lambda: payer.pay(payee.device_id, payee.wallet_id, 1, after(1))
    )
    payer.defund(1_00, after(1))  # a defund is made online: not an offline payment
    payer.apply_sync(net.answer(payer.sync_batch(after(2)), after(2)))
    assert payer.payments_since_sync == 0
    payer.pay(payee.device_id, payee.wallet_id, 1_00, after(3))


def test_max_days_since_the_last_sync_forces_a_sync(net: Network) -> None:
    payer, payee = net.device(funded=100_00), net.device("BBBB")
    # the allowance counts from the certificate's issue (registration) until the first sync
    almost = T0 + timedelta(days=LIMITS.max_days) - timedelta(seconds=1)
    payer.pay(payee.device_id, payee.wallet_id, 1_00, almost)
    late = T0 + timedelta(days=LIMITS.max_days)
    assert payer.view(late)["must_sync"] is True
    refused(offline.MUST_SYNC, payer, lambda: payer.pay(payee.device_id, payee.wallet_id, 1, late))
    payer.apply_sync(net.answer(payer.sync_batch(late), late))
    payer.pay(payee.device_id, payee.wallet_id, 1_00, late + timedelta(days=LIMITS.max_days - 1))


def test_a_device_does_not_pay_once_its_own_certificate_is_revoked(net: Network) -> None:
    payer, payee = net.device(funded=100_00), net.device("BBBB")
    net.revoke(payer)
    payer.apply_sync(net.answer(payer.sync_batch(after(1)), after(1)))
    assert payer.certificate_status() == "revoked"
    refused(
        offline.REVOKED, payer, lambda: payer.pay(payee.device_id, payee.wallet_id, 1, after(2))
    )
    payer.defund(100_00, after(2))  # the holder can still get the purse back online


def test_a_device_does_not_pay_with_an_expired_certificate(net: Network) -> None:
    payer, payee = net.device(funded=100_00), net.device("BBBB")
    expired = T0 + timedelta(days=offline.CERTIFICATE_DAYS, seconds=1)
    payer.apply_sync(net.answer(payer.sync_batch(expired), expired))
    assert payer.certificate_status(expired) == "expired"
    refused(offline.EXPIRED, payer, lambda: payer.pay(payee.device_id, payee.wallet_id, 1, expired))


def test_a_device_without_a_certificate_does_nothing(net: Network) -> None:
    se = SecureElement.generate(CURRENCY)
    assert se.view()["certificate_status"] == "not installed"
    refused(offline.MALFORMED, se, lambda: se.pay("AAAAD000000000000001", "W", 1, after(1)))
    refused(offline.MALFORMED, se, lambda: se.sync_batch(after(1)))


# ------------------------------------------------------------------ installing


def test_install_checks_the_chain_and_the_key(net: Network) -> None:
    se = SecureElement.generate(CURRENCY)
    operator = net.operators["AAAA"]
    mine = net.device_certificate("AAAA", se.public_key)
    someone_elses = net.device_certificate("AAAA", SigningKey.generate().public_key)
    refused(
        offline.BAD_CHAIN,
        se,
        lambda: se.install(someone_elses, operator.certificate, net.cb.public_key),
    )
    rogue = sign_document(SigningKey.generate(), mine["document"])
    refused(
        offline.BAD_CHAIN, se, lambda: se.install(rogue, operator.certificate, net.cb.public_key)
    )
    refused(
        offline.BAD_CHAIN,
        se,
        lambda: se.install(mine, operator.certificate, SigningKey.generate().public_key),
    )
    se.install(mine, operator.certificate, net.cb.public_key)
    assert (
        se.device_id == mine["document"]["device"] and se.view()["certificate_status"] == "active"
    )
    other_id = net.device_certificate("AAAA", se.public_key)
    refused(
        offline.MALFORMED, se, lambda: se.install(other_id, operator.certificate, net.cb.public_key)
    )


# ------------------------------------------------------------------ funding


def test_funding_records_apply_once_in_order(net: Network) -> None:
    se = net.device()
    first = net.funding(se.device_id, 30_00)
    assert se.apply_funding(first) == 30_00
    refused(offline.COUNTER_REUSED, se, lambda: se.apply_funding(first))  # replayed
    third = net.funding(se.device_id, 10_00, seq=3)
    refused(offline.MALFORMED, se, lambda: se.apply_funding(third))  # seq 2 missing
    assert se.apply_funding(net.funding(se.device_id, 20_00, seq=2)) == 50_00
    assert se.apply_funding(third) == 60_00
    assert se.view()["fundings"] == 3


def test_a_forged_funding_record_is_refused(net: Network) -> None:
    se = net.device()
    genuine = net.funding(se.device_id, 30_00)
    tampered = {**genuine, "document": {**genuine["document"], "amount": 900_00}}
    refused(offline.BAD_SIGNATURE, se, lambda: se.apply_funding(tampered))
    by_another_operator = sign_document(net.operators["BBBB"].key, genuine["document"])
    refused(offline.BAD_SIGNATURE, se, lambda: se.apply_funding(by_another_operator))
    refused(offline.BAD_SIGNATURE, se, lambda: se.apply_funding({"document": {}}))


def test_a_funding_record_for_another_device_is_refused(net: Network) -> None:
    se, other = net.device(), net.device()
    refused(offline.WRONG_PAYEE, se, lambda: se.apply_funding(net.funding(other.device_id, 10_00)))


def test_a_funding_record_beyond_the_cap_or_in_another_currency_is_refused(net: Network) -> None:
    se = net.device(funded=LIMITS.purse_cap)
    refused(offline.OVER_LIMIT, se, lambda: se.apply_funding(net.funding(se.device_id, 1)))
    other = net.device()
    record = offline.funding_record(
        device=other.device_id, seq=1, amount=1, currency="USD", at=T0, order="o"
    )
    usd = sign_document(net.operators["AAAA"].key, record)
    refused(offline.WRONG_CURRENCY, other, lambda: other.apply_funding(usd))


def test_setting_the_clock_back_buys_no_offline_days(net: Network) -> None:
    payer, payee = net.device(funded=100_00), net.device("BBBB")
    almost = T0 + timedelta(days=LIMITS.max_days) - timedelta(minutes=1)
    payer.pay(payee.device_id, payee.wallet_id, 1_00, almost)
    # the device's clock is set back: the secure element takes the latest time it has seen
    back = payer.pay(payee.device_id, payee.wallet_id, 1_00, T0)
    assert back["transfer"]["at"] == almost.isoformat()
    assert payer.must_sync(T0) is None
    assert payer.must_sync(almost + timedelta(minutes=1)) is not None
    late = T0 + timedelta(days=LIMITS.max_days)
    refused(offline.MUST_SYNC, payer, lambda: payer.pay(payee.device_id, payee.wallet_id, 1, late))
    payee.receive(back, T0)
    assert payee.view(T0)["unsynced_received"][0]["at"] == almost.isoformat()
