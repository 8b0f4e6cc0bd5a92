"""The engine's offline parts that need no database: the purse-cap overrides applied to the
policy, the step tally, and the report's offline section."""

from __future__ import annotations

from cbdc.policy import WalletClass, load_policy
from simulator.offline import network_back, policy_with_offline
from simulator.offline_metrics import OfflineTally
from simulator.report_offline import offline_section
from tests.scenario_schema.helpers import parse


def test_purse_caps_override_the_policy_and_bring_per_payment_down() -> None:
    policy = load_policy(None, 2)
    iv, ii = policy.offline_limits(WalletClass.IV), policy.offline_limits(WalletClass.II)
    spec = parse("[offline]\npurse_cap = { IV = 3 }\n").offline
    assert spec is not None
    changed = policy_with_offline(policy, spec)
    new_iv = changed.offline_limits(WalletClass.IV)
    assert new_iv.purse_cap == 300 and new_iv.per_payment == 300  # brought down to the cap
    assert (new_iv.max_payments, new_iv.max_days) == (iv.max_payments, iv.max_days)
    assert changed.offline_limits(WalletClass.II) == ii  # other classes keep theirs
    assert changed.classes == policy.classes  # online limits untouched
    spec = parse("[offline]\npurse_cap = 2_000\nper_payment = { II = 100 }\n").offline
    assert spec is not None
    changed = policy_with_offline(policy, spec)
    assert {changed.offline_limits(c).purse_cap for c in WalletClass} == {200_000}
    assert changed.offline_limits(WalletClass.II).per_payment == 10_000
    assert policy_with_offline(policy, parse("[offline]\n").offline) is policy  # type: ignore[arg-type]


def test_the_tally_hands_over_each_step_once_and_keeps_run_totals() -> None:
    tally = OfflineTally(["BKA1", "BKB1"])
    tally.registered["BKA1"] += 3
    tally.paid("BKA1", 500)
    tally.paid("BKA1", 250)
    tally.attempts["BKA1"] += 1
    tally.syncs["BKB1"] += 2
    tally.fallbacks["BKA1"] += 1
    step = tally.take("BKA1")
    assert step == {
        "offline_payments": 2,
        "offline_value": 750,
        "double_spend_attempts": 1,
        "offline_syncs": 0,
        "devices": 3,
    }
    assert tally.take("BKB1")["offline_syncs"] == 2
    assert tally.take("BKA1") == {**dict.fromkeys(step, 0), "devices": 3}  # stock stays
    assert tally.run["offline_payments"] == 2 and tally.run["offline_value"] == 750
    assert tally.run["offline_syncs"] == 2 and tally.run["fallbacks"] == 1


def test_the_report_section() -> None:
    assert offline_section({"name": "x"}) is None
    summary = {
        "currency": "CNY",
        "decimals": 2,
        "offline": {
            "devices": 252,
            "compromised_devices": 27,
            "attack": "clone",
            "payments": 694,
            "value": 5_415_696,
            "double_spend_attempts": 39,
            "double_spends_detected": 26,
            "devices_revoked": 26,
            "time_to_detection_hours": {"mean": 15.55, "median": 17.03, "max": 34.04},
            "losses_by_operator": {"BKA1": 117_656, "BKB1": 96_204},
            "recovered_by_operator": {"BKA1": 53_332, "BKB1": 35_650},
            "syncs": 720,
            "paid_online_instead": 75,
            "rollbacks": 0,
            "refusals": {"offline_device_revoked": 9},
        },
    }
    text = offline_section(summary)
    assert text is not None
    assert "| devices (of which compromised) | 252 (27, attack: clone) |" in text
    assert "| their value | 54,156.96 CNY |" in text
    assert "| time to detection: mean / median / max | 15.6 h / 17.0 h / 34.0 h |" in text
    assert (
        "| BKA1: loss carried (recovered from payers' wallets) | 1,176.56 CNY (533.32 CNY) |"
        in text
    )
    assert "`offline_device_revoked` 9" in text
    summary["offline"]["time_to_detection_hours"] = {"mean": None, "median": None, "max": None}  # type: ignore[index]
    assert "— / — / —" in (offline_section(summary) or "")


def test_when_the_network_is_back() -> None:
    down = [(100.0, 200.0), (300.0, 400.0), (400.0, 450.0), (420.0, 500.0)]
    assert network_back([], 5.0) == 5.0
    assert network_back(down, 50.0) == 50.0  # up
    assert network_back(down, 100.0) == 200.0
    assert network_back(down, 199.0) == 200.0
    assert network_back(down, 200.0) == 200.0  # back at the end of the window
    assert network_back(down, 250.0) == 250.0  # two separate outages do not merge
    assert network_back(down, 310.0) == 500.0  # adjoining and overlapping ones do
