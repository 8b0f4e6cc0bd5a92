"""A small scenario with offline use, for the engine tests: two operators, devices for all,
compromised devices, and a day without network."""

from __future__ import annotations

import csv
from pathlib import Path

SMALL = """
[scenario]
name = "offline-small"
question = "Do offline payments keep the books straight?"
seed = 5
duration = "3d"
step = "12h"

[settlement]
mode = "rtgs"

[[operators]]
code = "BKA1"
reserves = 2_000_000
quota = 4_000_000
water_marks = { low = 20_000, target = 100_000, high = 400_000 }
households = 30
merchants = 3
class_mix = { IV = 0.6, III = 0.4 }
household_deposit = 3_000

[[operators]]
code = "BKB1"
reserves = 2_000_000
quota = 4_000_000
water_marks = { low = 20_000, target = 100_000, high = 400_000 }
households = 30
merchants = 3
class_mix = { IV = 0.6, III = 0.4 }
household_deposit = 3_000

[substitution]
deposit_target = 0.3
speed = 1.0

[payments]
rate = 1
amount = { distribution = "lognormal", median = 30, sigma = 0.8, max = 400 }
cross_operator = 0.4

[offline]
share = 0.5
sync_delay = { distribution = "exponential", mean = "4h" }
compromised = 0.25
attack = "clone"
fund = 400

[[events]]
at = "1d"
kind = "network_down"
length = "12h"
"""


def read_series(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "series.csv").open() as handle:
        return list(csv.DictReader(handle))
