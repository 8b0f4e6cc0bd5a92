"""Scenario files: derived values, defaults, adoption curves and units."""

from __future__ import annotations

import hashlib
import pickle

import pytest

from simulator.scenario import (
    DepositRun,
    FixedAmount,
    LognormalAmount,
    Outage,
    Scenario,
    SetLimits,
    SettlementModeSwitch,
    UniformAmount,
)
from simulator.scenario_values import NOT_GIVEN, format_duration, parse_duration, to_minor
from tests.scenario_schema.helpers import MINIMAL, parse

# --- derived values ----------------------------------------------------------------------------


def test_derived_values() -> None:
    s = parse(
        """
[settlement]
mode = "net"
net_interval = "15m"

[[events]]
at = "20d"
kind = "settlement_mode"
mode = "rtgs"

[[events]]
at = "12d"
kind = "deposit_run"
operator = "BKA1"
share = 0.6

[[events]]
at = "12d"
kind = "outage"
operator = "BKB1"
length = "2h"

[[events]]
at = 0
kind = "deposit_run"
operator = "BKB1"
share = 1
over = "1d12h"
"""
    )
    assert s.meta.duration == 30 * 86_400 and s.meta.step == 86_400 and s.steps == 30
    assert s.settlement.net_interval == 900 and s.settlement.net_max_items == 0
    assert s.decimals == 2
    assert s.operators[0].reserves == 100_000_000  # minor units
    assert s.operators[0].name == "Bank BKA1"
    marks = s.operators[0].water_marks
    assert (marks.low, marks.target, marks.high) == (1_000_000, 5_000_000, 20_000_000)
    assert s.operators[0].class_mix == {"IV": 1.0} and s.operators[0].merchant_class == "II"
    # sorted by time, stable for equal times (deposit_run before outage at 12d)
    assert [(e.at, e.kind) for e in s.events] == [
        (0, "deposit_run"),
        (12 * 86_400, "deposit_run"),
        (12 * 86_400, "outage"),
        (20 * 86_400, "settlement_mode"),
    ]
    first, run, outage, switch = s.events
    assert isinstance(first, DepositRun) and first.over == 36 * 3600 and first.share == 1.0
    assert isinstance(run, DepositRun) and run.over == s.meta.step  # default: one step
    assert isinstance(outage, Outage) and outage.length == 7200
    assert isinstance(switch, SettlementModeSwitch) and switch.mode == "rtgs"
    # defaults of the optional tables
    assert s.policy.overflow is None and s.policy.limits == {}
    assert (s.substitution.cash_target, s.substitution.deposit_target) == (0.0, 0.0)
    assert s.substitution.speed == 0.25
    assert s.payments.amount == LognormalAmount(distribution="lognormal", median=50, sigma=1.0)
    assert s.payments.amount.median == 5000
    assert (s.payments.rate, s.payments.to_merchants, s.payments.cross_operator) == (1.0, 0.7, 0.2)
    assert s.payments.batch_size == 2000
    assert s.adoption.midpoint == s.meta.duration // 2


def test_digest_and_equality() -> None:
    a = parse()
    b = parse("# a comment changes the text, not the scenario\n")
    assert a == b
    assert a.digest != b.digest
    assert a.digest == hashlib.sha256(a.source_text.encode()).hexdigest()
    assert parse("[payments]\nrate = 2\n") != a
    assert pickle.loads(pickle.dumps(a)) == a


def test_explicit_water_marks_and_mix() -> None:
    s = parse(
        'name = "Bank B"\nwater_marks = { low = 10, target = 20.5, high = 30 }\n'
        'class_mix = { iv = 0.6, III = 0.3, II = 0.1 }\nmerchant_class = "I"\n'
        "household_cash = 2000\nhousehold_deposit = 20000.5\nmerchant_deposit = 0\n"
    )
    op = s.operators[1]
    assert op.name == "Bank B"
    assert (op.water_marks.low, op.water_marks.target, op.water_marks.high) == (1000, 2050, 3000)
    assert op.class_mix == {"IV": 0.6, "III": 0.3, "II": 0.1}
    assert op.merchant_class == "I"
    assert (op.household_cash, op.household_deposit) == (200_000, 2_000_050)


def test_limit_overrides_given() -> None:
    s = parse(
        """
[policy]
overflow = "sweep"
[policy.limits.IV]
balance_cap = 2000
annual = "none"
[policy.limits.II]

[[events]]
at = "1d"
kind = "set_limits"
wallet_class = "III"
single_payment = 99.99
operator = "BKA1"
"""
    )
    assert s.policy.overflow == "sweep"
    iv = s.policy.limits["IV"]
    assert iv.given() == {"balance_cap": 200_000, "annual": None}
    assert iv.balance_cap == 200_000 and iv.annual is None
    assert iv.single_payment is NOT_GIVEN and iv.daily is NOT_GIVEN
    assert s.policy.limits["II"].given() == {}
    (event,) = s.events
    assert isinstance(event, SetLimits)
    assert event.given() == {"single_payment": 9999}
    assert event.wallet_class == "III" and event.operator == "BKA1"
    dumped = s.model_dump()
    assert dumped["policy"]["limits"]["IV"] == {"balance_cap": 200_000, "annual": None}
    assert "source_text" not in dumped
    s.model_dump_json()  # the sentinel does not break serialisation


def test_amount_distributions() -> None:
    s = parse('[payments]\namount = { distribution = "uniform", min = 1, max = 20.5 }\n')
    assert isinstance(s.payments.amount, UniformAmount)
    assert (s.payments.amount.min, s.payments.amount.max) == (100, 2050)
    s = parse('[payments]\namount = { distribution = "fixed", value = 12.50 }\n')
    assert isinstance(s.payments.amount, FixedAmount) and s.payments.amount.value == 1250
    s = parse(
        '[payments]\namount = { distribution = "lognormal", median = 60, sigma = 1, max = 2000 }\n'
    )
    assert isinstance(s.payments.amount, LognormalAmount)
    assert (s.payments.amount.median, s.payments.amount.sigma, s.payments.amount.max) == (
        6000,
        1.0,
        200_000,
    )


def test_single_operator_and_no_merchants_defaults() -> None:
    one = MINIMAL.split('[[operators]]\ncode = "BKB1"')[0].replace("merchants = 2", "merchants = 0")
    s = parse(base=one)
    assert s.payments.cross_operator == 0.0  # the default 0.2 cannot apply
    assert s.payments.to_merchants == 0.0  # nobody to pay


# --- adoption ----------------------------------------------------------------------------------


def adoption(extra: str) -> Scenario:
    return parse("[adoption]\n" + extra)


def test_adoption_endpoints_and_monotonicity() -> None:
    s = adoption('start = 0.05\nend = 0.8\nmidpoint = "10d"\nsteepness = 0.5\n')
    a = s.adoption
    assert a.midpoint == 10 * 86_400
    assert a.share_at(0) == 0.05
    times = [i * 3600 for i in range(0, 24 * 120)]
    shares = [a.share_at(t) for t in times]
    assert all(x <= y for x, y in zip(shares, shares[1:], strict=False))
    assert all(0.05 <= x <= 0.8 for x in shares)
    assert shares[-1] == pytest.approx(0.8, abs=1e-6)
    # the inflection: halfway (in the curve's own terms) near the midpoint, fastest there
    assert 0.05 < a.share_at(a.midpoint) < 0.8
    steps = [b - x for x, b in zip(shares, shares[1:], strict=False)]
    assert abs(times[steps.index(max(steps))] - a.midpoint) <= 3600


def test_adoption_defaults_constant_and_decreasing() -> None:
    s = parse()
    assert s.adoption.start == s.adoption.end == 1.0
    assert s.adoption.share_at(0) == s.adoption.share_at(10**7) == 1.0
    const = adoption("start = 0.3\nend = 0.3\n").adoption
    assert {const.share_at(t) for t in (0, 86_400, 10**8)} == {0.3}
    down = adoption("start = 0.9\nend = 0.1\nsteepness = 2\n").adoption
    assert down.share_at(0) == 0.9
    values = [down.share_at(d * 86_400) for d in range(60)]
    assert all(x >= y for x, y in zip(values, values[1:], strict=False))
    assert values[-1] == pytest.approx(0.1, abs=1e-6)
    steep = adoption('start = 0\nend = 1\nsteepness = 1000\nmidpoint = "30d"\n').adoption
    assert steep.share_at(0) == 0.0 and steep.share_at(60 * 86_400) == 1.0  # no overflow


# --- units -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "minor"),
    [
        (2000, 200_000),
        (12.5, 1250),
        (12.345, 1235),  # half up
        (12.344, 1234),
        (0.005, 1),
        (0.004, 0),
        (1_000_000.005, 100_000_001),
        (0, 0),
        (0.1 + 0.2, 30),
    ],
)
def test_amount_rounding(value: float, minor: int) -> None:
    assert to_minor(value) == minor


def test_amount_rounding_in_a_file() -> None:
    s = parse("household_deposit = 20_000.125\nhousehold_cash = 0.994\n")
    assert s.operators[1].household_deposit == 2_000_013
    assert s.operators[1].household_cash == 99


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (3600, 3600),
        ("30s", 30),
        ("15m", 900),
        ("6h", 21_600),
        ("1d", 86_400),
        ("2w", 1_209_600),
        ("1d12h", 129_600),
        ("90", 90),
        (" 2 h ", 7200),
    ],
)
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_format_duration() -> None:
    assert [format_duration(s) for s in (30, 900, 86_400 * 30, 1_209_600, 5400)] == [
        "30s",
        "15m",
        "30d",
        "2w",
        "1h30m",
    ]
