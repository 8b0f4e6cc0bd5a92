"""Scenario files: loading, derived values and error messages (pure unit tests, no database)."""

from __future__ import annotations

import hashlib
import pickle
import tomllib
from pathlib import Path

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
from simulator.scenario_loading import ScenarioError, load_scenario, parse_scenario
from simulator.scenario_values import NOT_GIVEN, format_duration, parse_duration, to_minor

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
EXAMPLES = sorted(SCENARIOS.glob("*.toml"))

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


def errors_of(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="scenarios/x.toml")
    for line in str(info.value).splitlines():
        assert line.startswith("scenarios/x.toml: ")
    return info.value.errors


def error_paths(text: str) -> list[str]:
    return [path for path, _ in errors_of(text)]


# --- the examples ------------------------------------------------------------------------------


def test_examples_are_there() -> None:
    names = {p.stem for p in EXAMPLES}
    assert names >= {
        "baseline",
        "cash-substitution",
        "bank-run",
        "bank-run-limits",
        "rtgs-vs-net",
        "net-settlement",
        "class-mix-anonymous",
        "class-mix-verified",
        "speed-1m",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.meta.name == path.stem
    assert scenario.meta.question.endswith("?")
    assert 2 <= scenario.meta.description.count(". ") + 1 <= 5
    assert scenario.source_text == path.read_text()
    wallets = sum(op.households + op.merchants for op in scenario.operators)
    households = sum(op.households for op in scenario.operators)
    payments = sum(
        households * scenario.adoption.share_at(i * scenario.meta.step) * scenario.payments.rate
        for i in range(scenario.steps)
    )
    if path.stem == "speed-1m":
        assert len(scenario.operators) == 4 and households == 100_000
        assert 950_000 <= payments <= 1_050_000
        assert scenario.settlement.mode == "net"
        assert scenario.payments.batch_size == 5000
    else:  # small enough to run in well under a minute
        assert wallets <= 5_000
        assert payments <= 50_000
    if scenario.settlement.mode == "rtgs":  # each one a signed settlement at the central bank
        assert payments * scenario.payments.cross_operator <= 5_000


def _without(path: str, *keys: str) -> dict:
    data = tomllib.loads((SCENARIOS / path).read_text())
    for key in keys:
        section, _, name = key.partition(".")
        if name:
            data[section].pop(name, None)
        else:
            data.pop(section, None)
    return data


@pytest.mark.parametrize(
    ("a", "b", "differing"),
    [
        ("bank-run.toml", "bank-run-limits.toml", ["policy"]),
        ("rtgs-vs-net.toml", "net-settlement.toml", ["settlement.mode"]),
        ("class-mix-anonymous.toml", "class-mix-verified.toml", []),
    ],
)
def test_pairs_differ_only_in_what_they_compare(a: str, b: str, differing: list[str]) -> None:
    texts = ("scenario.name", "scenario.question", "scenario.description")
    left, right = _without(a, *texts, *differing), _without(b, *texts, *differing)
    if a.startswith("class-mix"):
        mixes = {tuple(sorted(op.pop("class_mix").items())) for op in left["operators"]}
        mixes |= {tuple(sorted(op.pop("class_mix").items())) for op in right["operators"]}
        assert len(mixes) == 2
    assert left == right


def test_bank_run_pair() -> None:
    run, limited = (
        load_scenario(SCENARIOS / "bank-run.toml"),
        load_scenario(SCENARIOS / "bank-run-limits.toml"),
    )
    assert run.policy.limits == {}
    assert limited.policy.limits["IV"].given() == {"balance_cap": 200_000}
    assert limited.policy.limits["III"].given() == {"balance_cap": 1_000_000}
    (event,) = run.events
    assert isinstance(event, DepositRun)
    assert event.share == 0.6 and event.at == run.meta.duration // 2


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


# --- errors: each names its field path -----------------------------------------------------------


def test_unknown_key_names_its_path_and_suggests() -> None:
    errors = errors_of(MINIMAL + "[payments]\ncross_oprator = 0.5\n")
    assert errors == [("payments.cross_oprator", "unknown key (did you mean 'cross_operator'?)")]
    paths = error_paths(MINIMAL.replace("merchants = 2\n\n[[op", "merchantz = 2\n\n[[op"))
    assert "operators[0].merchantz" in paths
    assert error_paths(MINIMAL + "[payment]\nrate = 1\n") == ["payment"]
    assert error_paths(MINIMAL + "source_text = 'x'\n") == ["operators[1].source_text"]
    assert error_paths("source_text = 'x'\n" + MINIMAL) == ["source_text"]
    paths = error_paths(
        MINIMAL + '[[events]]\nat = 0\nkind = "outage"\noperator = "BKA1"\nlenght = "1h"\n'
    )
    assert paths == ["events[0].length", "events[0].lenght"]


def test_unknown_key_message_lists_keys_when_nothing_is_close() -> None:
    ((path, message),) = errors_of(MINIMAL + "[settlement]\nxyzzy = 1\n")
    assert path == "settlement.xyzzy"
    assert message == "unknown key (expected one of mode, net_interval, net_max_items)"


@pytest.mark.parametrize(
    ("edit", "path", "fragment"),
    [
        (("seed = 1", 'seed = "42"'), "scenario.seed", "expected an integer, got '42'"),
        (("seed = 1", "seed = 1.5"), "scenario.seed", "expected an integer"),
        (("seed = 1", "seed = -1"), "scenario.seed", "must be at least 0"),
        (('name = "t"', 'name = "Bank Run"'), "scenario.name", "lowercase"),
        (
            ("households = 10\nmerchants = 2\n\n", "households = true\nmerchants = 2\n\n"),
            "operators[0].households",
            "expected an integer, got true",
        ),
        (
            (
                "reserves = 1_000_000\nquota = 2_000_000\nhouseholds = 10\nmerchants = 2\n\n[[",
                'reserves = "lots"\nquota = 2_000_000\nhouseholds = 10\nmerchants = 2\n\n[[',
            ),
            "operators[0].reserves",
            "expected an amount in currency units",
        ),
        (('code = "BKB1"', 'code = "bkb1"'), "operators[1].code", "4 characters"),
        (('code = "BKB1"', 'code = "BKA1"'), "operators[1].code", "duplicate operator code"),
    ],
)
def test_bad_values_name_their_path(edit: tuple[str, str], path: str, fragment: str) -> None:
    errors = errors_of(MINIMAL.replace(*edit, 1))
    assert [p for p, _ in errors] == [path]
    assert fragment in errors[0][1]


def test_negative_and_zero_amounts() -> None:
    errors = errors_of(MINIMAL + "household_cash = -5\n")
    assert errors == [("operators[1].household_cash", "must not be negative")]
    errors = errors_of(MINIMAL.replace("quota = 2_000_000", "quota = 0", 1))
    assert errors == [("operators[0].quota", "must be greater than 0")]
    assert error_paths(
        MINIMAL + '[payments]\namount = { distribution = "fixed", value = 0 }\n'
    ) == ["payments.amount.value"]


def test_class_mix_must_sum_to_one() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(MINIMAL + "class_mix = { IV = 0.6, III = 0.3 }\n", source="scenarios/x.toml")
    assert str(info.value) == (
        "scenarios/x.toml: operators[1].class_mix: shares must sum to 1 (got 0.9)"
    )
    assert parse("class_mix = { IV = 0.3333333, III = 0.3333333, II = 0.3333334 }\n")
    assert error_paths(MINIMAL + "class_mix = { IV = 1.5, III = -0.5 }\n") == [
        "operators[1].class_mix.IV",
        "operators[1].class_mix.III",
    ]
    assert error_paths(MINIMAL + "class_mix = { V = 1.0 }\n") == ["operators[1].class_mix.V"]
    assert error_paths(MINIMAL + "class_mix = {}\n") == ["operators[1].class_mix"]


def test_unknown_event_kind() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(MINIMAL + '[[events]]\nat = 0\nkind = "rn"\n', source="scenarios/x.toml")
    assert str(info.value) == (
        "scenarios/x.toml: events[0].kind: unknown event kind 'rn' "
        "(expected one of deposit_run, set_limits, settlement_mode, outage)"
    )
    assert errors_of(MINIMAL + "[[events]]\nat = 0\n") == [
        ("events[0].kind", "required (one of deposit_run, set_limits, settlement_mode, outage)")
    ]


def test_unknown_distribution() -> None:
    errors = errors_of(MINIMAL + '[payments]\namount = { distribution = "normal", mean = 5 }\n')
    assert errors == [
        (
            "payments.amount.distribution",
            "unknown distribution 'normal' (expected one of lognormal, uniform, fixed)",
        )
    ]


def test_event_operator_must_exist() -> None:
    text = MINIMAL + (
        '[[events]]\nat = "1d"\nkind = "settlement_mode"\nmode = "net"\n'
        '[[events]]\nat = "1d"\nkind = "outage"\noperator = "BKA1"\nlength = "1h"\n'
        '[[events]]\nat = "2d"\nkind = "deposit_run"\noperator = "BKZ9"\nshare = 0.5\n'
        '[[events]]\nat = "2d"\nkind = "set_limits"\nwallet_class = "IV"\ndaily = 1\n'
        'operator = "BKQ1"\n'
    )
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="scenarios/x.toml")
    assert str(info.value).splitlines() == [
        "scenarios/x.toml: events[2].operator: no operator 'BKZ9'",
        "scenarios/x.toml: events[3].operator: no operator 'BKQ1'",
    ]


def test_event_checks() -> None:
    assert error_paths(
        MINIMAL + '[[events]]\nat = "30d"\nkind = "settlement_mode"\nmode = "net"\n'
    ) == ["events[0].at"]
    assert error_paths(
        MINIMAL + '[[events]]\nat = 0\nkind = "deposit_run"\noperator = "BKA1"\nshare = 0\n'
    ) == ["events[0].share"]
    assert error_paths(
        MINIMAL + '[[events]]\nat = 0\nkind = "outage"\noperator = "BKA1"\nlength = 0\n'
    ) == ["events[0].length"]
    assert errors_of(
        MINIMAL + '[[events]]\nat = 0\nkind = "set_limits"\nwallet_class = "IV"\n'
    ) == [("events[0]", "needs at least one of balance_cap, single_payment, daily, annual")]
    assert error_paths(
        MINIMAL + '[[events]]\nat = 0\nkind = "set_limits"\nwallet_class = "V"\ndaily = 1\n'
    ) == ["events[0].wallet_class"]


def test_duration_must_be_a_multiple_of_step() -> None:
    errors = errors_of(MINIMAL.replace('step = "1d"', 'step = "7d"'))
    assert errors == [
        ("scenario.duration", "must be a whole multiple of step (30d is not a multiple of 1w)")
    ]


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        ('"1x"', "bad duration '1x'"),
        ('"1.5h"', "bad duration"),
        ('"h"', "bad duration"),
        ("-5", "must not be negative"),
        ('"0s"', "must be greater than 0"),
        ("1.5", "expected a duration"),
        ("true", "expected a duration"),
    ],
)
def test_bad_duration(step: str, fragment: str) -> None:
    errors = errors_of(MINIMAL.replace('step = "1d"', f"step = {step}"))
    assert [p for p, _ in errors] == ["scenario.step"]
    assert fragment in errors[0][1]


def test_toml_syntax_error_names_the_line() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(MINIMAL.replace("seed = 1", "seed = = 1"), source="scenarios/x.toml")
    message = str(info.value)
    assert message.startswith("scenarios/x.toml: line 4: invalid TOML")
    assert "line 4" in message


def test_missing_and_misplaced_tables() -> None:
    no_ops = MINIMAL.split("[[operators]]")[0]
    assert errors_of(no_ops) == [("operators", "required")]
    assert errors_of(MINIMAL.replace('question = "q?"\n', "")) == [
        ("scenario.question", "required")
    ]
    assert errors_of("operators = []\n" + no_ops) == [("operators", "needs at least 1 entry")]
    nine = MINIMAL + "".join(
        f'[[operators]]\ncode = "BK{i}X"\nreserves = 1\nquota = 1\nhouseholds = 1\nmerchants = 0\n'
        for i in range(7)
    )
    assert errors_of(nine) == [("operators", "at most 8 entries (got 9)")]
    assert error_paths(MINIMAL + "[adoption]\nstart = 1.5\nsteepness = 0\n") == [
        "adoption.start",
        "adoption.steepness",
    ]


def test_payments_consistency() -> None:
    one = MINIMAL.split('[[operators]]\ncode = "BKB1"')[0]
    assert errors_of(one + "[payments]\ncross_operator = 0.2\n") == [
        ("payments.cross_operator", "must be 0 with a single operator")
    ]
    assert parse(base=one + "[payments]\ncross_operator = 0\n").payments.cross_operator == 0
    assert error_paths(MINIMAL + "[payments]\nbatch_size = 20001\nrate = -1\n") == [
        "payments.rate",
        "payments.batch_size",
    ]
    assert error_paths(
        MINIMAL + '[payments]\namount = { distribution = "uniform", min = 5, max = 1 }\n'
    ) == ["payments.amount.max"]


def test_water_marks_order_and_zero_wallets() -> None:
    errors = errors_of(MINIMAL + "water_marks = { low = 5, target = 4, high = 6 }\n")
    assert errors == [("operators[1].water_marks", "must have low < target < high")]
    assert error_paths(
        MINIMAL.replace(
            "households = 10\nmerchants = 2\n\n[[", "households = 0\nmerchants = 0\n\n[["
        )
    ) == ["operators[0].households"]


def test_every_error_is_reported_at_once() -> None:
    text = MINIMAL.replace("seed = 1", 'seed = "x"') + (
        'class_mix = { IV = 0.5 }\n[settlement]\nmode = "gross"\n'
    )
    assert error_paths(text) == ["scenario.seed", "settlement.mode", "operators[1].class_mix"]


def test_load_scenario_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(MINIMAL.replace("seed = 1", "seed = -1"))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: scenario.seed: ")
    assert isinstance(info.value, ValueError)
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(tmp_path / "missing.toml")
