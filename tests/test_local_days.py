"""The batch path's local day of a payment (`operators.payments.batch._LocalDays`) equals converting
the payment's time to the operator's time zone, across days, years and daylight-saving changes, for
times in any order and in any time zone of their own."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from operators.payments.batch import _LocalDays

ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]


@pytest.mark.parametrize("zone", ZONES)
def test_local_day_matches_conversion(zone: str) -> None:
    tz = ZoneInfo(zone)
    days = _LocalDays(tz)
    rng = random.Random(zone)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    times = []
    for _ in range(20_000):  # mostly forward, as a batch's times are, across a year end
        at += timedelta(seconds=rng.randint(0, 3_000))
        times.append(at)
    times += [  # and at random, around the daylight-saving changes and the year boundary
        datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(-86_400, 400 * 86_400))
        for _ in range(5_000)
    ]
    for at in times:
        shown = at.astimezone(tz) if rng.random() < 0.3 else at  # in the operator's own zone too
        expected = shown.astimezone(tz).date()
        assert days.of(shown) == (expected, expected.year), shown


def test_naive_times_read_as_astimezone_does() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    at = datetime(2026, 12, 31, 23, 30)
    expected = at.astimezone(tz).date()
    assert _LocalDays(tz).of(at) == (expected, expected.year)
