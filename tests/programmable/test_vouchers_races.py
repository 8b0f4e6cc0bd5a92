"""Vouchers under concurrency and at expiry: payments racing each other never spend more than
the voucher holds; payments racing the expiry sweep are decided by the one clock (payment iff
now < expires_at); the sweep returns unspent vouchers to the issuer exactly once with two
runners and a restart; a voucher payment the payee's operator returns comes back into the
voucher (tests/programmable/test_voucher_refunds.py: after expiry). Conservation by the audits."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import text

from cbdc.http import RemoteError
from operators.programmable import voucher_jobs
from operators.state import OperatorState
from tests.clocks import operator_clock
from tests.helpers import drain, refused
from tests.programmable.test_escrow_races import _together
from tests.programmable.voucher_helpers import audit_vouchers, programme, set_category


def _expiries(network: Any) -> int:
    with network.state("BKA1").factory() as s:
        return int(
            s.execute(
                text("SELECT count(*) FROM voucher_events WHERE kind = 'expiry'")
            ).scalar_one()
        )


def test_concurrent_voucher_payments_never_overspend(network: Any) -> None:
    clock = operator_clock(network)
    issuer = network.open_wallet("BKA1", deposit=500_00, load=500_00)
    holder = network.open_wallet("BKA1")
    shops = [network.open_wallet("BKA1"), network.open_wallet("BKB1")]
    for shop in shops:
        set_category(network, shop, "groceries")
    p = programme(clock, issuer, per_holder=100_00)
    issuer.grant_voucher(p.programme_id, holder.wallet_id, 100_00)
    calls = [
        partial(holder.pay_with_voucher, shop.wallet_id, 20_00, programme=p.programme_id)
        for shop in shops
        for _ in range(4)
    ]
    results = _together(calls)
    ok = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(ok) == 5 and len(errors) == 3, results
    assert all(isinstance(e, RemoteError) for e in errors), errors
    assert {e.code for e in errors if isinstance(e, RemoteError)} == {
        "insufficient_voucher_balance"
    }
    reports = audit_vouchers(network)
    assert reports["BKA1"]["vouchers"] == 0
    assert shops[0].balance().balance + shops[1].balance().balance == 100_00
    assert issuer.programme(p.programme_id).spent == 100_00


def test_payments_racing_the_expiry_sweep(network: Any) -> None:
    clock = operator_clock(network)
    issuer = network.open_wallet("BKA1", deposit=500_00, load=500_00)
    holders = [network.open_wallet("BKA1") for _ in range(3)]
    shop = network.open_wallet("BKA1")
    set_category(network, shop, "groceries")
    late = programme(clock, issuer, seconds=30)
    early = programme(clock, issuer, seconds=3600)
    for h in holders:
        issuer.grant_voucher(late.programme_id, h.wallet_id, 30_00)
        issuer.grant_voucher(early.programme_id, h.wallet_id, 30_00)
    clock.advance(31)  # the first programme is due, the other not
    runner = network.state("BKA1").runner
    calls: list[Callable[[], Any]] = [
        partial(h.pay_with_voucher, shop.wallet_id, 10_00, programme=p.programme_id)
        for p in (late, early)
        for h in holders
    ]
    calls += [partial(voucher_jobs.expire_due, runner) for _ in range(2)]
    results = _together(calls)
    for result in results[:3]:  # past the expiry: refused, before or after the sweep
        assert isinstance(result, RemoteError) and result.code == "voucher_expired", result
    for result in results[3:6]:
        assert not isinstance(result, BaseException), result
    assert sum(results[6:]) == 1
    assert _expiries(network) == 3
    expired = issuer.programme(late.programme_id)
    assert (expired.status, expired.returned, expired.outstanding) == ("expired", 90_00, 0)
    assert issuer.balance().balance == 500_00 - 180_00 + 90_00
    assert shop.balance().balance == 30_00
    refused(
        lambda: issuer.grant_voucher(late.programme_id, holders[0].wallet_id, 1_00),
        409,
        "programme_expired",
    )
    assert [v.programme for v in holders[0].balance().vouchers] == [early.programme_id]
    audit_vouchers(network)


def test_the_expiry_happens_once_with_two_runners_and_a_restart(network: Any) -> None:
    clock = operator_clock(network)
    issuer = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    holders = [network.open_wallet("BKA1") for _ in range(4)]
    shop = network.open_wallet("BKB1")
    set_category(network, shop, "groceries")
    programmes = [programme(clock, issuer, seconds=10) for _ in range(5)]
    for p in programmes:
        for h in holders:
            issuer.grant_voucher(p.programme_id, h.wallet_id, 40_00)
    holders[0].pay_with_voucher(shop.wallet_id, 15_00, programme=programmes[0].programme_id)
    clock.advance(11)
    state = network.state("BKA1")
    restarted = OperatorState(state.config)  # a second process on the same database
    restarted.ctx.clock = state.ctx.clock
    try:
        done = _together(
            [
                lambda: voucher_jobs.expire_due(state.runner),
                lambda: voucher_jobs.expire_due(restarted.runner),
                lambda: restarted.runner.run_due(),
            ]
        )
        assert not any(isinstance(d, BaseException) for d in done), done
        assert voucher_jobs.expire_due(state.runner) == 0
        assert voucher_jobs.expire_due(restarted.runner) == 0
    finally:
        restarted.stop()
    assert _expiries(network) == 20
    assert all(issuer.programme(p.programme_id).status == "expired" for p in programmes)
    assert issuer.balance().balance == 1_000_00 - 15_00
    refused(
        lambda: holders[1].pay_with_voucher(
            shop.wallet_id, 1_00, programme=programmes[1].programme_id
        ),
        409,
        "voucher_expired",
    )
    reports = audit_vouchers(network)
    assert reports["BKA1"]["vouchers"] == 0 and reports["BKA1"]["programmes_active"] == 0
    assert shop.balance().balance == 15_00


def test_a_voucher_payment_the_payee_cannot_take_comes_back_into_the_voucher(
    network: Any,
) -> None:
    clock = operator_clock(network)
    issuer = network.open_wallet("BKA1", deposit=500_00, load=500_00)
    holder = network.open_wallet("BKA1")
    shop = network.open_wallet("BKB1", deposit=10_000_00, load=9_999_00)  # class IV: near cap
    set_category(network, shop, "groceries")
    p = programme(clock, issuer)
    issuer.grant_voucher(p.programme_id, holder.wallet_id, 80_00)
    paid = holder.pay_with_voucher(shop.wallet_id, 50_00, programme=p.programme_id)
    network.run_jobs()
    drain(network)
    status = holder.payment(paid.payment_id)
    assert (status.status, status.failure) == ("returned", "payee_balance_cap_exceeded")
    info = holder.balance()
    # Back into the voucher (the programme is active), never the holder's wallet as free money.
    assert (info.balance, info.vouchers[0].balance) == (0, 80_00)
    assert issuer.programme(p.programme_id).spent == 0
    assert shop.balance().balance == 9_999_00
    audit_vouchers(network)
