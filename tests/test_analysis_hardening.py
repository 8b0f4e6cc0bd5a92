"""Issue #12 finding 7 (analysis centre): AML reports are bounded and schema-checked per rule,
pseudonymous by construction; the money supply shows each operator's reserves only to the
central bank and the regulator."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from cbdc.clock import iso, utcnow
from cbdc.http import RemoteError, SignedClient

DETAILS: dict[str, dict[str, Any]] = {  # as operators/compliance/aml.py builds them
    "large_value": {"payee_operator": "BKB1", "threshold": 50_000_00},
    "structuring": {"count": 3, "limit": 5_000_00, "window_minutes": 1440},
    "velocity": {"count": 20, "window_minutes": 60},
    "fan_out": {"counterparties": 10, "window_minutes": 60},
    "fan_in": {"counterparties": 10, "window_minutes": 60},
    "rapid_load_unload": {"loaded": 10_000_00, "unloaded": 9_000_00, "window_minutes": 1440},
}


def report(wallet_id: str, rule: str = "velocity", **changes: Any) -> dict[str, Any]:
    return {
        "report_id": str(uuid.uuid4()),
        "wallet": wallet_id,
        "rule": rule,
        "amount": 1_000_00,
        "details": DETAILS[rule],
        "occurred_at": iso(utcnow()),
        **changes,
    }


def send(network: Any, body: dict[str, Any]) -> dict[str, Any]:
    return dict(network.state("BKA1").ctx.central_bank.report_alert(body))


def refused(network: Any, body: dict[str, Any], code: str = "validation_error") -> None:
    with pytest.raises(RemoteError) as caught:
        send(network, body)
    assert (caught.value.status, caught.value.code) == (422, code), caught.value
    assert caught.value.body["type"].endswith(code)


def stored(network: Any) -> list[dict[str, Any]]:
    return list(network.admin.request("GET", "/v1/analysis/alerts")["alerts"])


def test_each_rule_accepts_the_details_operators_send(network: Any) -> None:
    wallet = network.open_wallet("BKA1").wallet_id
    for rule in DETAILS:
        assert send(network, report(wallet, rule))["stored"] is True
    alerts = stored(network)
    assert sorted(a["rule"] for a in alerts) == sorted(DETAILS)
    assert all(a["details"] == DETAILS[a["rule"]] for a in alerts)


def test_reports_outside_the_schema_are_refused_and_store_nothing(network: Any) -> None:
    wallet = network.open_wallet("BKA1").wallet_id
    personal = [
        {**DETAILS["velocity"], "name": "Chen Jing"},
        {**DETAILS["velocity"], "phone": "+8613912345678"},
        {**DETAILS["velocity"], "id_number": "110101199003077651"},
        {"count": 20},  # a field missing
        {"count": "20", "window_minutes": 60},  # a number as text
        {"count": 20, "window_minutes": 60.5},
        {"count": -1, "window_minutes": 60},
        {"count": 20, "window_minutes": 10**9},
        {"count": 10**12, "window_minutes": 60},
        DETAILS["large_value"],  # another rule's details
        {},
    ]
    for details in personal:
        refused(network, report(wallet, "velocity", details=details))
    refused(
        network,
        report(wallet, "large_value", details={"payee_operator": "Chen Jing", "threshold": 1}),
    )
    refused(network, {**report(wallet, "velocity"), "rule": "name_match"})
    refused(network, report(wallet, "velocity", note="customer is Chen Jing"))
    refused(network, report(wallet, "velocity", amount=-5))
    refused(network, report(wallet, "velocity", occurred_at="x" * 200))
    refused(network, report(wallet, "velocity", report_id="not-a-uuid-but-36-characters-long!!!"))
    for bad_wallet in (
        "Chen Jing",
        wallet[:-1] + str((int(wallet[-1]) + 1) % 10),
        "BKA1" + "x" * 16,
    ):
        refused(network, report(wallet, "velocity", wallet=bad_wallet))
    assert stored(network) == []


def test_a_report_dated_far_in_the_future_or_past_is_refused(network: Any) -> None:
    """Issue #12 review: a report dated year 9999 was accepted and headed the regulator's
    alerts forever. occurred_at is bounded: 5 minutes of clock skew ahead, 400 days back."""
    wallet = network.open_wallet("BKA1").wallet_id
    now = utcnow()
    for when in (
        "9999-12-31T23:59:59+00:00",
        iso(now + timedelta(minutes=6)),
        iso(now - timedelta(days=401)),
        "1970-01-01T00:00:00+00:00",
    ):
        refused(network, report(wallet, occurred_at=when), "aml_report_time_out_of_range")
    assert stored(network) == []
    for moment in (now + timedelta(minutes=4), now - timedelta(days=399), now):
        assert send(network, report(wallet, occurred_at=iso(moment)))["stored"] is True
    assert len(stored(network)) == 3


def test_an_oversized_report_is_refused_before_parsing(network: Any) -> None:
    wallet = network.open_wallet("BKA1").wallet_id
    padded = report(wallet, "velocity", details={**DETAILS["velocity"], "pad": "x" * 4000})
    assert len(json.dumps(padded)) > 2048
    refused(network, padded, "aml_report_too_large")
    assert stored(network) == []


def test_money_supply_detail_per_operator_only_for_the_central_bank_and_regulator(
    network: Any,
) -> None:
    network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    full = network.admin.request("GET", "/v1/stats/money-supply")
    assert [o["operator"] for o in full["by_operator"]] == ["BKA1", "BKB1"]
    regulator = SignedClient(
        network.cb,
        key=network.regulator.signing,
        key_id="regulator",
        server_public_key=network.cb_key.public_key,
    )
    assert regulator.request("GET", "/v1/stats/money-supply")["by_operator"] == full["by_operator"]
    for code in ("BKA1", "BKB1"):
        client = SignedClient(
            network.cb,
            key=network.operator_keys[code],
            key_id=f"operator:{code}",
            server_public_key=network.cb_key.public_key,
        )
        mine = client.request("GET", "/v1/stats/money-supply")
        # The network totals, and its own line only: never another operator's reserves.
        assert mine["by_operator"] == [o for o in full["by_operator"] if o["operator"] == code]
        for total in ("digital_currency_outstanding", "reserves_total", "live_tokens"):
            assert mine[total] == full[total]
