"""Helpers for the scenario file tests: a minimal scenario, parsing, collecting errors."""

from __future__ import annotations

from simulator.scenario import (
    Scenario,
)
from simulator.scenario_loading import parse_scenario

MINIMAL = """\
[scenario]
name = "t"
question = "q?"
seed = 1
duration = "30d"
step = "1d"

[[operators]]
code = "BKA1"
reserves = 1_000_000
quota = 2_000_000
households = 10
merchants = 2

[[operators]]
code = "BKB1"
reserves = 1_000_000
quota = 2_000_000
households = 10
merchants = 2
"""


def parse(extra: str = "", *, base: str = MINIMAL) -> Scenario:
    return parse_scenario(base + extra, source="scenarios/x.toml")
