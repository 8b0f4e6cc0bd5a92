"""The AML fan-in rule for wallets credited by cross-operator payments under deferred net
settlement: the payee's operator judges it when it applies a settled pair
(operators/settlement/netting.py::apply_pair -> operators/compliance/aml.py::on_receipts), counting
the payers' aliases of every payment received inside the window, whichever cycle brought it,
together with payers at the same operator; one alert per wallet per window, reported to the
analysis centre.

The policy is test_compliance_aml's "quiet" one with only `fan_count` lowered (to 3), so "no
alert" holds for every rule at both operators.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from cbdc.clock import utcnow
from tests.net_settlement.helpers import CODES, conserved, cycle
from tests.test_compliance_aml import YUAN, aml, cb_alerts, op_alerts, rules_of

FAN = 3
POLICY = aml(fan_count=FAN)


@pytest.fixture
def net(network: Any) -> Any:
    """The network (under the policy it is parametrized with) in mode "net", as in
    tests/net_settlement."""
    for code in CODES:
        network.state(code).ctx.settlement_mode = "net"
    return network


def payers(net: Any, n: int, code: str = "BKA1") -> list[Any]:
    return [net.open_wallet(code, load=500 * YUAN) for _ in range(n)]


def pay(payer: Any, payee: Any, amount: int) -> None:
    receipt = payer.pay(payee.wallet_id, amount)
    if payee.wallet_id[:4] != payer.wallet_id[:4]:
        assert (receipt.status, receipt.route) == ("pending_settlement", "cross")


def fan_in(net: Any, code: str) -> list[dict[str, Any]]:
    return op_alerts(net, code, rule="fan_in")


@pytest.mark.parametrize("network", [POLICY], indirect=True)
def test_fan_in_is_judged_when_the_pair_is_applied(net: Any) -> None:
    a1, a2, a3 = payers(net, FAN, "BKA1")
    b1, b2, b3 = payers(net, FAN, "BKB1")
    hub_b, quiet_b = net.open_wallet("BKB1"), net.open_wallet("BKB1")
    hub_a = net.open_wallet("BKA1")
    # BKA1 -> BKB1: three payers of hub_b; two payers (three payments) of quiet_b
    for payer, amount in ((a1, 10), (a2, 20), (a3, 30)):
        pay(payer, hub_b, amount * YUAN)
    for payer in (a1, a2, a1):
        pay(payer, quiet_b, 10 * YUAN)
    # BKB1 -> BKA1, smaller: BKA1 is the debtor of the pair, BKB1 the creditor
    for payer in (b1, b2, b3):
        pay(payer, hub_a, 5 * YUAN)
    net.run_jobs()
    # Not judged before the money arrives: the payees have received nothing yet.
    assert hub_b.balance().balance == 0
    assert op_alerts(net, "BKA1") == [] and op_alerts(net, "BKB1") == []

    closed = cycle(net)
    assert closed is not None
    (pair,) = closed["pairs"]
    assert (pair["debtor"], pair["creditor"]) == ("BKA1", "BKB1")
    assert hub_b.balance().balance == 60 * YUAN and quiet_b.balance().balance == 30 * YUAN
    assert hub_a.balance().balance == 15 * YUAN

    # both sides of the pair judged their payees: the creditor and the debtor
    alerts = op_alerts(net, "BKB1")
    assert rules_of(alerts) == [("fan_in", hub_b.wallet_id)]
    (alert,) = alerts
    assert alert["details"] == {"counterparties": FAN, "window_minutes": 60}
    assert alert["amount"] == 60 * YUAN  # what this pair credited to the payee
    assert rules_of(op_alerts(net, "BKA1")) == [("fan_in", hub_a.wallet_id)]
    assert op_alerts(net, "BKA1")[0]["amount"] == 15 * YUAN
    assert op_alerts(net, "BKB1", wallet=quiet_b.wallet_id) == []

    # reported to the analysis centre, pseudonymously, by the payee's operator
    net.run_jobs()
    central = cb_alerts(net, rule="fan_in")
    assert sorted((a["operator"], a["wallet"], a["amount"]) for a in central) == sorted(
        [("BKB1", hub_b.wallet_id, 60 * YUAN), ("BKA1", hub_a.wallet_id, 15 * YUAN)]
    )
    by_report = {a["report_id"]: a for a in central}
    assert by_report[str(alert["id"])]["details"] == alert["details"]
    assert cb_alerts(net, rule="fan_in", wallet=quiet_b.wallet_id) == []
    assert len(cb_alerts(net)) == 2  # nothing else was reported
    conserved(net)


@pytest.mark.parametrize("network", [POLICY], indirect=True)
def test_an_even_pair_is_judged_too(net: Any) -> None:
    """An even pair moves no tokens, but its payments are credited and judged the same way."""
    a_payers, b_payers = payers(net, FAN, "BKA1"), payers(net, FAN, "BKB1")
    hub_a, hub_b = net.open_wallet("BKA1"), net.open_wallet("BKB1")
    for payer in a_payers:
        pay(payer, hub_b, 10 * YUAN)
    for payer in b_payers:
        pay(payer, hub_a, 10 * YUAN)
    closed = cycle(net)
    assert closed is not None
    (pair,) = closed["pairs"]
    assert (pair["net"], pair["debtor"]) == (0, None)
    assert rules_of(fan_in(net, "BKA1")) == [("fan_in", hub_a.wallet_id)]
    assert rules_of(fan_in(net, "BKB1")) == [("fan_in", hub_b.wallet_id)]
    net.run_jobs()
    assert sorted((a["operator"], a["wallet"]) for a in cb_alerts(net, rule="fan_in")) == [
        ("BKA1", hub_a.wallet_id),
        ("BKB1", hub_b.wallet_id),
    ]


@pytest.mark.parametrize("network", [POLICY], indirect=True)
def test_one_fan_in_alert_per_window_across_cycles(net: Any) -> None:
    p1, p2, p3, p4, p5, p6 = payers(net, 6, "BKA1")
    (local,) = payers(net, 1, "BKB1")
    hub, slow, mixed, late = (net.open_wallet("BKB1") for _ in range(4))

    # cycle 1: hub reaches the threshold; slow and mixed get two remote payers each
    for payer in (p1, p2, p3):
        pay(payer, hub, 10 * YUAN)
    for payer in (p1, p2, p1):
        pay(payer, slow, 10 * YUAN)
    for payer in (p4, p5):
        pay(payer, mixed, 10 * YUAN)
    assert cycle(net) is not None
    assert rules_of(fan_in(net, "BKB1")) == [("fan_in", hub.wallet_id)]

    # cycle 2, inside the window: more payers of hub (no second alert for it), the third payer
    # of slow (counted over both cycles), a local payer of mixed (counted with the remote
    # ones), and a payee who gets all three payers in this cycle
    for payer in (p4, p5, p6):
        pay(payer, hub, 10 * YUAN)
    pay(p3, slow, 10 * YUAN)
    pay(local, mixed, 10 * YUAN)
    for payer in (p1, p2, p6):
        pay(payer, late, 10 * YUAN)
    assert cycle(net) is not None
    assert hub.balance().balance == 60 * YUAN and slow.balance().balance == 40 * YUAN

    alerts = fan_in(net, "BKB1")
    assert rules_of(alerts) == sorted(("fan_in", w.wallet_id) for w in (hub, slow, mixed, late))
    counted = {a["wallet_id"]: a["details"]["counterparties"] for a in alerts}
    assert counted == {hub.wallet_id: 3, slow.wallet_id: 3, mixed.wallet_id: 3, late.wallet_id: 3}
    assert len(op_alerts(net, "BKB1", wallet=hub.wallet_id)) == 1
    assert fan_in(net, "BKA1") == []  # (the payers paying three payees is fan-out there)

    # a third cycle, still inside the window: nobody is alerted twice
    for payer in (p1, p2, p3):
        pay(payer, late, 5 * YUAN)
        pay(payer, mixed, 5 * YUAN)
    pay(p3, hub, 5 * YUAN)
    assert cycle(net) is not None
    assert len(fan_in(net, "BKB1")) == 4

    net.run_jobs()
    central = cb_alerts(net, rule="fan_in")
    assert sorted((a["operator"], a["wallet"]) for a in central) == sorted(
        ("BKB1", w.wallet_id) for w in (hub, slow, mixed, late)
    )
    assert {a["report_id"] for a in central} == {str(a["id"]) for a in alerts}
    conserved(net)


@pytest.mark.parametrize("network", [POLICY], indirect=True)
def test_a_new_window_may_alert_again(net: Any) -> None:
    """Once the window has passed (the payee's operator's clock moved on), the old payers no
    longer count and a new fan-in raises a new alert."""
    old, new = payers(net, FAN, "BKA1"), payers(net, FAN, "BKA1")
    hub = net.open_wallet("BKB1")
    for payer in old:
        pay(payer, hub, 10 * YUAN)
    cycle(net)
    assert len(fan_in(net, "BKB1")) == 1

    later = timedelta(minutes=61)
    net.state("BKB1").ctx.clock = lambda: utcnow() + later
    # the analysis centre refuses reports dated ahead of its own clock: time passes there too
    net.cb_app.state.cb.clock = lambda: utcnow() + later
    for payer in new[:2]:  # two new payers: the three old ones are out of the window
        pay(payer, hub, 10 * YUAN)
    cycle(net)
    assert len(fan_in(net, "BKB1")) == 1
    pay(new[2], hub, 10 * YUAN)
    cycle(net)
    alerts = fan_in(net, "BKB1")
    assert rules_of(alerts) == [("fan_in", hub.wallet_id)] * 2
    assert sorted(a["details"]["counterparties"] for a in alerts) == [FAN, FAN]
    net.run_jobs()
    assert [a["wallet"] for a in cb_alerts(net, rule="fan_in")] == [hub.wallet_id] * 2


@pytest.mark.parametrize("network", [POLICY], indirect=True)
def test_payments_sent_back_do_not_count_as_payers(net: Any) -> None:
    """Three payers pay a wallet near its balance cap: one payment is credited, two go back.
    The wallet was paid by one payer, not three: no fan-in alert."""
    a_payers = payers(net, FAN, "BKA1")
    hub = net.open_wallet("BKB1", deposit=10_000 * YUAN, load=9_992 * YUAN)  # class IV: cap 10,000
    for payer in a_payers:
        pay(payer, hub, 5 * YUAN)
    cycle(net)
    net.run_jobs()
    assert hub.balance().balance == 9_997 * YUAN  # one credited, two sent back
    assert sorted(p.balance().balance for p in a_payers) == [495 * YUAN, 500 * YUAN, 500 * YUAN]
    assert fan_in(net, "BKB1") == []
    conserved(net)
