"""Scenario files: the examples load, and paired examples differ only in what they compare."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from simulator.scenario import (
    DepositRun,
)
from simulator.scenario_loading import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


EXAMPLES = sorted(SCENARIOS.glob("*.toml"))


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
        ("stimulus-money.toml", "stimulus-voucher.toml", ["stimulus.form"]),
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
