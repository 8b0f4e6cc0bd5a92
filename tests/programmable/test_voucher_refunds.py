"""Voucher payments given back (review note NV1): a voucher payment the payee's operator returns
after its programme expired goes to the issuer (where expiry sends unspent value), not to the
holder's wallet; racing the expiry sweep it still does, exactly once; the voucher's totals and
events add up (the audits). While the programme is active it goes back into the voucher
(tests/programmable/test_vouchers_races.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from operators.programmable import voucher_jobs
from tests.clocks import operator_clock
from tests.helpers import drain
from tests.programmable.test_escrow_races import _together
from tests.programmable.voucher_helpers import audit_vouchers, programme, set_category


def _events(network: Any, kind: str) -> list[tuple[str, int]]:
    with network.state("BKA1").factory() as s:
        rows = s.execute(
            text("SELECT holder, amount FROM voucher_events WHERE kind = :k ORDER BY id"),
            {"k": kind},
        ).all()
        return [(str(r.holder), int(r.amount)) for r in rows]


def _returned_payment(network: Any) -> tuple[Any, Any, Any, Any, Any]:
    """An issuer, a holder granted 80.00, a shop elsewhere at its balance cap (it returns what
    it is paid), a programme expiring in 60 s and a voucher payment of 50.00 to the shop (not
    settled yet)."""
    clock = operator_clock(network)
    issuer = network.open_wallet("BKA1", deposit=500_00, load=500_00)
    holder = network.open_wallet("BKA1")
    shop = network.open_wallet("BKB1", deposit=10_000_00, load=9_999_00)  # class IV: near cap
    set_category(network, shop, "groceries")
    p = programme(clock, issuer, seconds=60)
    issuer.grant_voucher(p.programme_id, holder.wallet_id, 80_00)
    paid = holder.pay_with_voucher(shop.wallet_id, 50_00, programme=p.programme_id)
    clock.advance(61)
    return issuer, holder, shop, p, paid


def _check_after_expiry(
    network: Any, issuer: Any, holder: Any, shop: Any, p: Any, paid: Any
) -> None:
    status = holder.payment(paid.payment_id)
    assert (status.status, status.failure) == ("returned", "payee_balance_cap_exceeded")
    # Not free money of the holder: its wallet holds nothing; the issuer has all 80.00 back.
    assert holder.balance().balance == 0
    assert issuer.balance().balance == 500_00
    shown = issuer.programme(p.programme_id)
    assert (shown.status, shown.granted, shown.spent, shown.returned, shown.outstanding) == (
        "expired",
        80_00,
        0,
        80_00,
        0,
    )
    assert shop.balance().balance == 9_999_00
    # Exactly once: one refund event (to the issuer), one expiry of the rest, even drained again.
    drain(network)
    assert _events(network, "refund_expired") == [(holder.wallet_id, 50_00)]
    assert _events(network, "refund") == []
    assert _events(network, "expiry") == [(holder.wallet_id, 30_00)]
    reports = audit_vouchers(network)
    assert reports["BKA1"]["vouchers"] == 0 and reports["BKA1"]["programmes_active"] == 0


def test_a_voucher_payment_returned_after_the_expiry_goes_to_the_issuer(network: Any) -> None:
    issuer, holder, shop, p, paid = _returned_payment(network)
    # The sweep first: the programme is expired when the return arrives.
    assert voucher_jobs.expire_due(network.state("BKA1").runner) == 1
    assert issuer.balance().balance == 500_00 - 80_00 + 30_00
    drain(network)
    _check_after_expiry(network, issuer, holder, shop, p, paid)


def test_a_voucher_refund_racing_the_expiry_sweep(network: Any) -> None:
    issuer, holder, shop, p, paid = _returned_payment(network)
    runner = network.state("BKA1").runner
    # The return (settled, delivered, returned, received: the jobs) and two sweeps at once: the
    # refund locks the programme row before its accounts, the sweep skips a locked one; in
    # either order the refund goes to the issuer (past expires_at) and the sweep returns the rest.
    done = _together(
        [
            network.run_jobs,
            lambda: voucher_jobs.expire_due(runner),
            lambda: voucher_jobs.expire_due(runner),
        ]
    )
    assert not any(isinstance(d, BaseException) for d in done), done
    drain(network)
    voucher_jobs.expire_due(runner)
    _check_after_expiry(network, issuer, holder, shop, p, paid)


def test_a_voucher_payment_the_central_bank_refuses_goes_back_into_the_voucher(
    network: Any,
) -> None:
    clock = operator_clock(network)
    issuer = network.open_wallet("BKA1", deposit=500_00, load=500_00)
    holder = network.open_wallet("BKA1")
    shop = network.open_wallet("BKB1")
    set_category(network, shop, "groceries")
    p = programme(clock, issuer)
    issuer.grant_voucher(p.programme_id, holder.wallet_id, 80_00)
    engine = network.cb_app.state.cb.engine
    with engine.begin() as conn:
        conn.execute(text("UPDATE operators SET status = 'suspended' WHERE code = 'BKB1'"))
    paid = holder.pay_with_voucher(shop.wallet_id, 50_00, programme=p.programme_id)
    drain(network)
    status = holder.payment(paid.payment_id)
    assert (status.status, status.failure) == ("failed", "operator_suspended")
    info = holder.balance()
    assert (info.balance, info.spent_today, info.vouchers[0].balance) == (0, 0, 80_00)
    assert issuer.programme(p.programme_id).spent == 0
    assert _events(network, "refund") == [(holder.wallet_id, 50_00)]
    audit_vouchers(network)
    with engine.begin() as conn:
        conn.execute(text("UPDATE operators SET status = 'active' WHERE code = 'BKB1'"))
    again = holder.pay_with_voucher(shop.wallet_id, 80_00, programme=p.programme_id)
    drain(network)
    assert holder.payment(again.payment_id).status == "delivered"
    assert (shop.balance().balance, holder.balance().balance) == (80_00, 0)
    assert issuer.programme(p.programme_id).spent == 80_00
    audit_vouchers(network)
