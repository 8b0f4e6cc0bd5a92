"""The offline example scenarios: what they set up, and the fraud pair differs only in the
purse cap. (tests/e2e/test_scenario_examples.py runs every example; tests/scenario_schema checks
that every example loads and stays small.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

from simulator.scenario_loading import load_scenario
from simulator.scenario_offline import NetworkDown

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_the_outage_example_takes_the_network_down_for_two_days() -> None:
    scenario = load_scenario(SCENARIOS / "offline-outage.toml")
    assert scenario.offline is not None and scenario.offline.devices == 1.0
    assert scenario.offline.compromised == 0.0
    (event,) = scenario.events
    assert isinstance(event, NetworkDown)
    assert event.length == 2 * 86_400 and event.at + event.length < scenario.meta.duration


def test_the_fraud_pair_differs_only_in_the_purse_cap() -> None:
    def without(name: str) -> dict:
        data = tomllib.loads((SCENARIOS / name).read_text())
        for key in ("name", "question", "description"):
            data["scenario"].pop(key)
        data["offline"].pop("purse_cap")
        return data

    assert without("offline-fraud-cap-small.toml") == without("offline-fraud-cap-large.toml")
    small = load_scenario(SCENARIOS / "offline-fraud-cap-small.toml").offline
    large = load_scenario(SCENARIOS / "offline-fraud-cap-large.toml").offline
    assert small is not None and large is not None
    assert set(small.purse_cap.values()) == {30_000}  # type: ignore[union-attr]
    assert set(large.purse_cap.values()) == {100_000}  # type: ignore[union-attr]
    assert small.compromised > 0 and small.attack == "clone"
