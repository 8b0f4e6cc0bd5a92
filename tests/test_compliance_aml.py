"""AML monitoring (operators/compliance/aml.py): each rule fires on its pattern and stays quiet on
a near miss; alerts are kept at the operator and reported pseudonymously to the central bank's
analysis centre, which only the regulator (and the central bank's admin) may read.

Every test runs under a "quiet" policy in which all rules are out of reach except the ones it
lowers, so "no alert" can be asserted for the whole operator, not just for one rule.
Class IV limits (yuan): single 2,000, daily 5,000, cap 10,000.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from cbdc.clock import iso, utcnow
from cbdc.http import RemoteError, SignedClient
from cbdc.policy import load_policy, with_overrides
from tests.conftest import VALID_BANK_ACCOUNT, VALID_ID_NUMBER

YUAN = 100
QUIET = {
    "large_value": 10**12,
    "structuring_count": 10**6,
    "velocity_count": 10**6,
    "fan_count": 10**6,
    "load_unload_min": 10**12,
}


def aml(**rules: Any) -> Any:
    return with_overrides(load_policy(None, 2), **{**QUIET, **rules})


def op_alerts(net: Any, code: str = "BKA1", **filters: Any) -> list[dict[str, Any]]:
    data = net.staff(code).request("GET", "/v1/admin/aml/alerts", params=filters or None)
    return list(data["alerts"])


def cb_client(net: Any) -> SignedClient:
    return SignedClient(
        net.cb,
        key=net.regulator.signing,
        key_id="regulator",
        server_public_key=net.cb_key.public_key,
    )


def cb_alerts(net: Any, **filters: Any) -> list[dict[str, Any]]:
    data = cb_client(net).request("GET", "/v1/analysis/alerts", params=filters or None)
    return list(data["alerts"])


def rules_of(alerts: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    return sorted((a["rule"], a.get("wallet_id") or a.get("wallet")) for a in alerts)


def payees(net: Any, n: int, code: str = "BKA1") -> list[Any]:
    return [net.open_wallet(code) for _ in range(n)]


# ------------------------------------------------------------------ large value


@pytest.mark.parametrize("network", [aml(large_value=1_000 * YUAN)], indirect=True)
def test_large_value(network: Any) -> None:
    payer = network.open_wallet("BKA1", load=3_000 * YUAN)
    local, remote = network.open_wallet("BKA1"), network.open_wallet("BKB1")
    payer.pay(local.wallet_id, 1_000 * YUAN - 1)  # one fen under: not reported
    assert op_alerts(network) == []

    payer.pay(local.wallet_id, 1_000 * YUAN)  # at the threshold: reported
    payer.pay(remote.wallet_id, 1_000 * YUAN)  # each large payment is, across operators too
    alerts = op_alerts(network)
    assert rules_of(alerts) == [("large_value", payer.wallet_id)] * 2
    assert all(a["amount"] == 1_000 * YUAN for a in alerts)
    assert sorted(a["details"]["payee_operator"] for a in alerts) == ["BKA1", "BKB1"]
    assert op_alerts(network, "BKB1") == []  # receiving a large payment is not the rule

    network.run_jobs()
    central = cb_alerts(network, rule="large_value")
    assert len(central) == 2
    for alert in central:
        assert (alert["operator"], alert["wallet"], alert["rule"], alert["amount"]) == (
            "BKA1",
            payer.wallet_id,
            "large_value",
            1_000 * YUAN,
        )
    assert {a["report_id"] for a in central} == {str(a["id"]) for a in alerts}


# ------------------------------------------------------------------ structuring


@pytest.mark.parametrize(
    "network", [aml(large_value=1_000 * YUAN, structuring_count=3)], indirect=True
)
def test_structuring_just_under_the_large_value_threshold(network: Any) -> None:
    payer = network.open_wallet("BKA1", load=5_000 * YUAN)
    p1, p2 = payees(network, 2)
    payer.pay(p1.wallet_id, 950 * YUAN)
    payer.pay(p2.wallet_id, 950 * YUAN)
    payer.pay(p1.wallet_id, 900 * YUAN - 1)  # just below the "just under" band [900, 1000)
    payer.pay(p2.wallet_id, 1_000 * YUAN)  # at the threshold: large value, not "just under"
    assert rules_of(op_alerts(network)) == [("large_value", payer.wallet_id)]

    payer.pay(p1.wallet_id, 900 * YUAN)  # the third inside the band
    alerts = op_alerts(network, rule="structuring")
    assert rules_of(alerts) == [("structuring", payer.wallet_id)]
    assert alerts[0]["amount"] == 900 * YUAN
    assert alerts[0]["details"]["count"] == 3
    assert alerts[0]["details"]["limit"] == 1_000 * YUAN
    network.run_jobs()
    central = cb_alerts(network, rule="structuring")
    assert [(a["wallet"], a["operator"]) for a in central] == [(payer.wallet_id, "BKA1")]


@pytest.mark.parametrize("network", [aml(structuring_count=2)], indirect=True)
def test_structuring_just_under_the_single_payment_limit(network: Any) -> None:
    # Class IV single-payment limit 2,000: the band is [1,800, 2,000).
    hit = network.open_wallet("BKA1", load=4_000 * YUAN)
    miss = network.open_wallet("BKA1", load=4_000 * YUAN)
    p1, p2 = payees(network, 2)
    miss.pay(p1.wallet_id, 1_800 * YUAN - 1)
    miss.pay(p2.wallet_id, 1_999 * YUAN)
    hit.pay(p1.wallet_id, 1_800 * YUAN)
    assert op_alerts(network) == []
    hit.pay(p2.wallet_id, 1_999 * YUAN + 99)
    alerts = op_alerts(network)
    assert rules_of(alerts) == [("structuring", hit.wallet_id)]
    assert alerts[0]["details"]["limit"] == 2_000 * YUAN


# ------------------------------------------------------------------ velocity


@pytest.mark.parametrize("network", [aml(velocity_count=3)], indirect=True)
def test_velocity_fires_once_per_window(network: Any) -> None:
    fast = network.open_wallet("BKA1", load=500 * YUAN)
    slow = network.open_wallet("BKA1", load=500 * YUAN)
    (shop,) = payees(network, 1)
    remote = network.open_wallet("BKB1")
    for payer in (fast, fast, slow, slow):
        payer.pay(shop.wallet_id, 10 * YUAN)
    assert op_alerts(network) == []  # two payments each: one short

    fast.pay(remote.wallet_id, 10 * YUAN)  # the third (cross-operator payments count too)
    assert rules_of(op_alerts(network)) == [("velocity", fast.wallet_id)]
    for _ in range(3):  # still inside the window: no second alert
        fast.pay(shop.wallet_id, 10 * YUAN)
    alerts = op_alerts(network)
    assert rules_of(alerts) == [("velocity", fast.wallet_id)]
    assert alerts[0]["details"]["count"] == 3

    network.run_jobs()
    network.run_jobs()
    central = cb_alerts(network, rule="velocity")
    assert [(a["wallet"], a["amount"]) for a in central] == [(fast.wallet_id, 10 * YUAN)]


# ------------------------------------------------------------------ fan-out / fan-in


@pytest.mark.parametrize("network", [aml(fan_count=3)], indirect=True)
def test_fan_out(network: Any) -> None:
    a, b, c = (network.open_wallet("BKA1", load=500 * YUAN) for _ in range(3))
    l1, l2, l3, l4 = payees(network, 4)
    (r1,) = payees(network, 1, "BKB1")
    for payee in (l1, l2, l1, l2):  # many payments, two payees
        b.pay(payee.wallet_id, 10 * YUAN)
    a.pay(l1.wallet_id, 10 * YUAN)
    a.pay(l2.wallet_id, 10 * YUAN)
    assert op_alerts(network) == []

    a.pay(l3.wallet_id, 10 * YUAN)
    assert rules_of(op_alerts(network)) == [("fan_out", a.wallet_id)]
    a.pay(l4.wallet_id, 10 * YUAN)  # a fourth payee inside the window: no second alert
    assert rules_of(op_alerts(network, rule="fan_out")) == [("fan_out", a.wallet_id)]

    c.pay(l3.wallet_id, 10 * YUAN)
    c.pay(l4.wallet_id, 10 * YUAN)
    c.pay(r1.wallet_id, 10 * YUAN)  # a payee at another operator is a payee too
    alerts = op_alerts(network)
    assert rules_of(alerts) == sorted([("fan_out", a.wallet_id), ("fan_out", c.wallet_id)])
    assert all(x["details"]["counterparties"] == 3 for x in alerts)
    # Receiving from one payer each is nothing at the payees' end.
    assert op_alerts(network, "BKB1") == []
    network.run_jobs()
    assert sorted(x["wallet"] for x in cb_alerts(network, rule="fan_out")) == sorted(
        [a.wallet_id, c.wallet_id]
    )


@pytest.mark.parametrize("network", [aml(fan_count=3)], indirect=True)
def test_fan_in_from_payers_at_the_same_operator(network: Any) -> None:
    p1, p2, p3 = (network.open_wallet("BKA1", load=500 * YUAN) for _ in range(3))
    hub, quiet = payees(network, 2)
    for payer in (p1, p2, p1):  # three payments, two payers
        payer.pay(quiet.wallet_id, 10 * YUAN)
    p1.pay(hub.wallet_id, 10 * YUAN)
    p2.pay(hub.wallet_id, 10 * YUAN)
    assert op_alerts(network) == []
    p3.pay(hub.wallet_id, 10 * YUAN)
    alerts = op_alerts(network)
    assert rules_of(alerts) == [("fan_in", hub.wallet_id)]
    assert alerts[0]["details"]["counterparties"] == 3
    p3.pay(quiet.wallet_id, 5 * YUAN)  # now the third payer of `quiet` as well
    p1.pay(hub.wallet_id, 10 * YUAN)  # hub again: inside the window, no second alert
    assert rules_of(op_alerts(network)) == sorted(
        [("fan_in", hub.wallet_id), ("fan_in", quiet.wallet_id)]
    )
    network.run_jobs()
    assert sorted(a["wallet"] for a in cb_alerts(network, rule="fan_in")) == sorted(
        [hub.wallet_id, quiet.wallet_id]
    )


@pytest.mark.parametrize("network", [aml(fan_count=3)], indirect=True)
def test_fan_in_from_payers_at_another_operator(network: Any) -> None:
    r1, r2, r3, r4 = (network.open_wallet("BKB1", load=500 * YUAN) for _ in range(4))
    local = network.open_wallet("BKA1", load=500 * YUAN)
    hub, quiet, mixed = payees(network, 3)
    for payer in (r1, r2, r1):  # three payments from two remote payers
        payer.pay(quiet.wallet_id, 10 * YUAN)
    r1.pay(hub.wallet_id, 10 * YUAN)
    r2.pay(hub.wallet_id, 10 * YUAN)
    network.run_jobs()
    assert op_alerts(network) == []
    r3.pay(hub.wallet_id, 10 * YUAN)
    network.run_jobs()
    assert rules_of(op_alerts(network)) == [("fan_in", hub.wallet_id)]

    # Payers counted across both routes: two remote and one local.
    r3.pay(mixed.wallet_id, 10 * YUAN)
    r4.pay(mixed.wallet_id, 10 * YUAN)
    network.run_jobs()
    assert op_alerts(network, wallet=mixed.wallet_id) == []
    local.pay(mixed.wallet_id, 10 * YUAN)
    alerts = op_alerts(network)
    assert rules_of(alerts) == sorted([("fan_in", hub.wallet_id), ("fan_in", mixed.wallet_id)])
    assert op_alerts(network, "BKB1") == []
    network.run_jobs()
    central = cb_alerts(network, rule="fan_in")
    assert sorted((a["operator"], a["wallet"]) for a in central) == sorted(
        [("BKA1", hub.wallet_id), ("BKA1", mixed.wallet_id)]
    )


# ------------------------------------------------------------------ load and unload


@pytest.mark.parametrize("network", [aml(load_unload_min=1_000 * YUAN)], indirect=True)
def test_rapid_load_unload(network: Any) -> None:
    hit = network.open_wallet("BKA1", load=1_000 * YUAN)
    short = network.open_wallet("BKA1", load=1_000 * YUAN)
    small = network.open_wallet("BKA1", load=1_000 * YUAN - 1)
    short.unload(800 * YUAN - 1)  # just under 80 % of what was loaded
    small.unload(1_000 * YUAN - 1)  # all of it, but less than the minimum was loaded
    assert op_alerts(network) == []

    hit.unload(800 * YUAN)
    alerts = op_alerts(network)
    assert rules_of(alerts) == [("rapid_load_unload", hit.wallet_id)]
    assert alerts[0]["amount"] == 800 * YUAN
    assert (alerts[0]["details"]["loaded"], alerts[0]["details"]["unloaded"]) == (
        1_000 * YUAN,
        800 * YUAN,
    )
    hit.unload(200 * YUAN)  # the rest: same window, no second alert
    assert len(op_alerts(network)) == 1
    network.run_jobs()
    assert [a["wallet"] for a in cb_alerts(network)] == [hit.wallet_id]


@pytest.mark.parametrize("network", [aml(load_unload_min=1_000 * YUAN)], indirect=True)
def test_rapid_load_unload_counts_cash_brought_over_the_counter(network: Any) -> None:
    """Cash in at the counter and straight out to a deposit is the classic layering move."""
    wallet = network.open_wallet("BKA1")
    staff = network.staff("BKA1")
    staff.request(
        "POST",
        f"/v1/admin/wallets/{wallet.wallet_id}/cash-load",
        {"amount": 2_000 * YUAN},
        idempotency_key="cash-in-0001",
    )
    wallet.unload(1_600 * YUAN - 1)  # just under 80 %
    assert op_alerts(network) == []
    wallet.unload(1)
    assert rules_of(op_alerts(network)) == [("rapid_load_unload", wallet.wallet_id)]


# ------------------------------------------------------------------ reporting


REPORTING = aml(large_value=1_000 * YUAN, velocity_count=3)


@pytest.mark.parametrize("network", [REPORTING], indirect=True)
def test_alerts_reach_the_analysis_centre_pseudonymously(network: Any) -> None:
    people = {
        "BKA1": ("Gao Yuanyuan Reported", "+8613700001111"),
        "BKB1": ("Liu Yang Reported", "+8613700002222"),
    }
    start = utcnow() - timedelta(seconds=1)
    wallets = {}
    for code, (name, phone) in people.items():
        wallet = network.operator(code).open_wallet(
            display_name=name,
            phone=phone,
            id_number=VALID_ID_NUMBER,
            bank_account=VALID_BANK_ACCOUNT,
            wallet_class="II",
        )
        network.staff(code).request(
            "POST",
            f"/v1/admin/customers/{wallet.balance().customer_id}/deposit",
            {"amount": 5_000 * YUAN},
            idempotency_key=str(uuid.uuid4()),
        )
        wallet.load(5_000 * YUAN)
        wallets[code] = wallet
    a, b = wallets["BKA1"], wallets["BKB1"]
    a.pay(b.wallet_id, 1_200 * YUAN)  # large value at BKA1
    b.pay(a.wallet_id, 1_100 * YUAN)  # large value at BKB1
    for _ in range(2):
        b.pay(a.wallet_id, 10 * YUAN)  # third payment of b: velocity at BKB1

    assert rules_of(op_alerts(network, "BKA1")) == [("large_value", a.wallet_id)]
    assert rules_of(op_alerts(network, "BKB1")) == sorted(
        [("large_value", b.wallet_id), ("velocity", b.wallet_id)]
    )
    assert rules_of(op_alerts(network, "BKB1", rule="velocity")) == [("velocity", b.wallet_id)]
    assert op_alerts(network, "BKB1", wallet=a.wallet_id) == []
    assert len(op_alerts(network, "BKB1", wallet=b.wallet_id)) == 2

    network.run_jobs()
    network.run_jobs()  # re-running the outbox does not report twice
    data = cb_client(network).request("GET", "/v1/analysis/alerts")
    alerts = data["alerts"]
    assert len(alerts) == 3
    assert data["totals_by_rule"] == {"large_value": 2, "velocity": 1}
    for alert in alerts:
        assert set(alert) == {
            "report_id",
            "operator",
            "wallet",
            "rule",
            "amount",
            "details",
            "occurred_at",
            "received_at",
        }
        assert alert["wallet"] == wallets[alert["operator"]].wallet_id
    blob = json.dumps(data, ensure_ascii=False)
    for name, phone in people.values():
        for secret in (name, phone, phone[1:], VALID_ID_NUMBER, VALID_BANK_ACCOUNT):
            assert secret not in blob
    for field in ("display_name", "id_number", "bank_account", "phone", "customer"):
        assert field not in blob

    # Filters: by rule, by operator, by wallet, and combined.
    assert rules_of(cb_alerts(network, rule="velocity")) == [("velocity", b.wallet_id)]
    assert {x["operator"] for x in cb_alerts(network, operator="BKB1")} == {"BKB1"}
    assert len(cb_alerts(network, operator="BKB1")) == 2
    assert [x["amount"] for x in cb_alerts(network, operator="BKA1")] == [1_200 * YUAN]
    assert {x["wallet"] for x in cb_alerts(network, wallet=b.wallet_id)} == {b.wallet_id}
    assert len(cb_alerts(network, wallet=b.wallet_id)) == 2
    assert cb_alerts(network, rule="velocity", operator="BKA1") == []
    assert cb_alerts(network, rule="fan_in") == []
    assert len(cb_alerts(network, since=iso(start))) == 3
    assert cb_alerts(network, since=iso(utcnow() + timedelta(minutes=5))) == []

    # Who may read them: the regulator and the central bank's admin; not operators, not
    # anonymous callers; operator staff only their own operator's alerts.
    assert len(network.admin.request("GET", "/v1/analysis/alerts")["alerts"]) == 3
    operator = SignedClient(
        network.cb,
        key=network.operator_keys["BKA1"],
        key_id="operator:BKA1",
        server_public_key=network.cb_key.public_key,
    )
    with pytest.raises(RemoteError) as caught:
        operator.request("GET", "/v1/analysis/alerts")
    assert caught.value.status == 403
    assert network.cb.get("/v1/analysis/alerts").status_code == 401
    with pytest.raises(RemoteError) as caught:
        a.client.request("GET", "/v1/admin/aml/alerts")
    assert caught.value.status == 403
    assert network.operator_http["BKA1"].get("/v1/admin/aml/alerts").status_code == 401

    # An operator reports only its own wallets to the analysis centre.
    with pytest.raises(RemoteError) as caught:
        operator.request(
            "POST",
            "/v1/analysis/reports",
            {
                "report_id": str(uuid.uuid4()),
                "wallet": b.wallet_id,
                "rule": "velocity",
                "amount": 1,
                "details": {},
                "occurred_at": iso(utcnow()),
            },
        )
    assert caught.value.status == 422
    assert len(cb_alerts(network)) == 3
