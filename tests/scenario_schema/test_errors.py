"""Scenario files: each error message names its field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.scenario_loading import ScenarioError, load_scenario, parse_scenario
from tests.scenario_schema.helpers import MINIMAL, parse


def errors_of(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="scenarios/x.toml")
    for line in str(info.value).splitlines():
        assert line.startswith("scenarios/x.toml: ")
    return info.value.errors


def error_paths(text: str) -> list[str]:
    return [path for path, _ in errors_of(text)]


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
        "(expected one of deposit_run, set_limits, settlement_mode, outage, network_down)"
    )
    assert errors_of(MINIMAL + "[[events]]\nat = 0\n") == [
        (
            "events[0].kind",
            "required (one of deposit_run, set_limits, settlement_mode, outage, network_down)",
        )
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
