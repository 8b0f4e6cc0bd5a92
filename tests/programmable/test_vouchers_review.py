"""Review of the vouchers (issue #17): one nonce sent at once as voucher payments of two
programmes and as an ordinary payment is paid once, the others refused with a problem (never a
500); a programme's name must not be blank."""

from __future__ import annotations

from functools import partial
from typing import Any

from tests.clocks import operator_clock
from tests.programmable.escrow_helpers import at
from tests.programmable.test_escrow_races import _together
from tests.programmable.voucher_helpers import (
    audit_vouchers,
    programme,
    set_category,
    signed_voucher_payment,
)
from wallets.orders import payment_order, programme_order, sign_order


def test_one_nonce_sent_at_once_on_three_paths_is_paid_once(network: Any) -> None:
    clock = operator_clock(network)
    issuer = network.open_wallet("BKA1", deposit=500_00, load=500_00)
    holder = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    shop, far = network.open_wallet("BKA1"), network.open_wallet("BKB1")
    set_category(network, shop, "groceries")
    set_category(network, far, "groceries")
    p1, p2 = programme(clock, issuer), programme(clock, issuer)
    for p in (p1, p2):
        issuer.grant_voucher(p.programme_id, holder.wallet_id, 50_00)
    http = network.operator_http["BKA1"]
    for i in range(4):
        nonce = f"one-nonce-{i:04d}"
        first = signed_voucher_payment(holder, shop.wallet_id, 1_00, p1.programme_id, nonce=nonce)
        second = signed_voucher_payment(holder, far.wallet_id, 2_00, p2.programme_id, nonce=nonce)
        plain = payment_order(
            payer=holder.wallet_id, payee=shop.wallet_id, amount=3_00, currency="CNY", nonce=nonce
        )
        answers = _together(
            [
                partial(http.post, "/v1/vouchers/payments", json=first),
                partial(http.post, "/v1/vouchers/payments", json=second),
                partial(http.post, "/v1/payments", json=sign_order(holder.key, plain)),
            ]
        )
        assert not any(isinstance(a, BaseException) for a in answers), answers
        codes = sorted(a.status_code for a in answers)
        assert codes == [201, 409, 409], [(a.status_code, a.text) for a in answers]
        assert all(
            a.json()["code"] == "idempotency_key_reused" for a in answers if a.status_code == 409
        )
    reports = audit_vouchers(network)
    spent = issuer.programme(p1.programme_id).spent + issuer.programme(p2.programme_id).spent
    assert reports["BKA1"]["vouchers"] == 100_00 - spent
    assert shop.balance().balance + far.balance().balance + holder.balance().balance == (
        100_00 + spent
    )


def test_a_blank_programme_name_is_refused(network: Any) -> None:
    clock = operator_clock(network)
    issuer = network.open_wallet("BKA1", deposit=10_00, load=10_00)
    order = programme_order(
        issuer=issuer.wallet_id,
        name="   ",
        categories=["groceries"],
        per_holder=10_00,
        expires_at=at(clock, 60),
        currency="CNY",
    )
    answer = network.operator_http["BKA1"].post(
        "/v1/programmes", json=sign_order(issuer.key, order)
    )
    assert answer.status_code == 422 and answer.json()["code"] == "validation_error", answer.text
