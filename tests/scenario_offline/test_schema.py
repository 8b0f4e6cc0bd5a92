"""Scenario files, offline use: the `[offline]` section and the `network_down` event load into
the models in minor units and seconds, and every mistake names its field."""

from __future__ import annotations

import pytest

from simulator.scenario_loading import ScenarioError, parse_scenario
from simulator.scenario_offline import ExponentialDelay, FixedDelay, LognormalDelay, NetworkDown
from tests.scenario_schema.helpers import MINIMAL, parse


def errors_of(extra: str) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(MINIMAL + extra, source="scenarios/x.toml")
    return info.value.errors


def test_no_offline_section_means_no_offline_use() -> None:
    assert parse().offline is None


def test_defaults() -> None:
    offline = parse("[offline]\n").offline
    assert offline is not None
    assert (offline.share, offline.devices, offline.compromised) == (0.0, 1.0, 0.0)
    assert offline.sync_delay == ExponentialDelay(distribution="exponential", mean=6 * 3600)
    assert offline.attack == "clone"
    assert offline.purse_cap is None and offline.per_payment is None
    assert offline.fund is None  # up to the purse cap
    assert offline.top_up == "sync"


def test_every_key_in_file_units() -> None:
    offline = parse(
        """
[offline]
share = 0.25
devices = 0.8
sync_delay = { distribution = "lognormal", mean = "12h", sigma = 0.5 }
compromised = 0.05
attack = "rollback"
purse_cap = { IV = 300, ii = 2_000.5 }
per_payment = { IV = 100 }
fund = 150.25
top_up = "never"
"""
    ).offline
    assert offline is not None
    assert offline.share == 0.25 and offline.devices == 0.8 and offline.compromised == 0.05
    assert offline.sync_delay == LognormalDelay(distribution="lognormal", mean=43_200, sigma=0.5)
    assert offline.attack == "rollback"
    assert offline.purse_cap == {"IV": 30_000, "II": 200_050}
    assert offline.per_payment == {"IV": 10_000}
    assert offline.fund == 15_025
    assert offline.top_up == "never"


def test_one_purse_cap_for_every_class_and_fixed_delays() -> None:
    offline = parse(
        '[offline]\npurse_cap = 500\nfund = "cap"\nsync_delay = { distribution = "fixed", '
        'value = "1d" }\n'
    ).offline
    assert offline is not None
    assert offline.purse_cap == {"I": 50_000, "II": 50_000, "III": 50_000, "IV": 50_000}
    assert offline.fund is None
    assert offline.sync_delay == FixedDelay(distribution="fixed", value=86_400)


def test_network_down_event() -> None:
    scenario = parse(
        '[[events]]\nat = "5d"\nkind = "network_down"\nlength = "2d"\n'
        '[[events]]\nat = "1d"\nkind = "outage"\noperator = "BKA1"\nlength = "1h"\n'
    )
    assert scenario.events[1] == NetworkDown(at=5 * 86_400, kind="network_down", length=172_800)
    assert scenario.events[0].kind == "outage"  # sorted by time


@pytest.mark.parametrize(
    ("extra", "path", "fragment"),
    [
        ("[offline]\nshare = 1.5\n", "offline.share", "must be at most 1"),
        ("[offline]\ncompromised = -0.1\n", "offline.compromised", "must be at least 0"),
        ("[offline]\ndevices = true\n", "offline.devices", "expected a number, got true"),
        ('[offline]\nattack = "replay"\n', "offline.attack", "'clone' or 'rollback'"),
        ('[offline]\ntop_up = "always"\n', "offline.top_up", "'sync' or 'never'"),
        ("[offline]\npurse_cap = 0\n", "offline.purse_cap", "must be greater than 0"),
        ("[offline]\npurse_cap = -5\n", "offline.purse_cap", "must not be negative"),
        ("[offline]\npurse_cap = { V = 5 }\n", "offline.purse_cap", "unknown wallet class 'V'"),
        ("[offline]\npurse_cap = { IV = 0 }\n", "offline.purse_cap", "IV: must be greater"),
        ("[offline]\npurse_cap = {}\n", "offline.purse_cap", "at least one wallet class"),
        ('[offline]\npurse_cap = "big"\n', "offline.purse_cap", "amount"),
        ('[offline]\nfund = "all"\n', "offline.fund", 'an amount or "cap"'),
        ("[offline]\nfund = 0\n", "offline.fund", "must be greater than 0"),
        (
            "[offline]\npurse_cap = 100\nper_payment = { IV = 200 }\n",
            "offline.per_payment.IV",
            "exceeds the purse cap of class IV",
        ),
        (
            '[offline]\nsync_delay = { distribution = "gamma", mean = "1h" }\n',
            "offline.sync_delay.distribution",
            "unknown distribution 'gamma' (expected one of exponential, lognormal, fixed)",
        ),
        (
            '[offline]\nsync_delay = { distribution = "exponential", mean = 0 }\n',
            "offline.sync_delay.mean",
            "must be greater than 0",
        ),
        (
            '[offline]\nsync_delay = { distribution = "exponential" }\n',
            "offline.sync_delay.mean",
            "required",
        ),
        (
            '[offline]\nsync_delay = { distribution = "lognormal", mean = "1h", sigma = 0 }\n',
            "offline.sync_delay.sigma",
            "must be greater than 0",
        ),
        ("[offline]\nsharee = 0.5\n", "offline.sharee", "did you mean 'share'?"),
        (
            '[[events]]\nat = "1d"\nkind = "network_down"\n',
            "events[0].length",
            "required",
        ),
        (
            '[[events]]\nat = "1d"\nkind = "network_down"\nlength = 0\n',
            "events[0].length",
            "must be greater than 0",
        ),
        (
            '[[events]]\nat = "30d"\nkind = "network_down"\nlength = "1d"\n',
            "events[0].at",
            "before the end of the run",
        ),
        (
            '[[events]]\nat = "1d"\nkind = "network_dwn"\nlength = "1d"\n',
            "events[0].kind",
            "outage, network_down)",
        ),
        (
            '[[events]]\nat = "1d"\nkind = "network_down"\nlength = "1d"\noperator = "BKA1"\n',
            "events[0].operator",
            "unknown key",
        ),
    ],
)
def test_mistakes_name_their_field(extra: str, path: str, fragment: str) -> None:
    errors = errors_of(extra)
    assert [p for p, _ in errors] == [path], errors
    assert fragment in errors[0][1], errors
