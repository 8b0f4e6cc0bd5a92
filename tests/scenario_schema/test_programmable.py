"""Scenario files: the programmable money sections ([merchants], [stimulus], [escrows])."""

from __future__ import annotations

import pytest

from simulator.scenario_loading import ScenarioError
from tests.scenario_schema.helpers import parse

MERCHANTS = "[merchants]\ncategories = { groceries = 0.5, retail = 0.5 }\n"


def test_the_sections_in_model_units() -> None:
    scenario = parse(
        MERCHANTS
        + '[stimulus]\nform = "voucher"\nat = "2d"\namount = 150.5\nexpires = "10d"\n'
        + '[escrows]\nshare = 0.1\nrelease_after = "6h"\ndeadline = "2d"\nrefunded = 0.25\n'
    )
    assert scenario.merchants is not None and scenario.merchants.categories["groceries"] == 0.5
    s = scenario.stimulus
    assert s is not None and (s.form, s.at, s.amount, s.expires) == (
        "voucher",
        172_800,
        15_050,
        864_000,
    )
    assert s.categories == ["groceries", "restaurants"] and s.households == 1.0
    e = scenario.escrows
    assert e is not None and (e.share, e.release_after, e.deadline, e.refunded) == (
        0.1,
        21_600,
        172_800,
        0.25,
    )
    assert parse().stimulus is None and parse().escrows is None


@pytest.mark.parametrize(
    ("extra", "path", "fragment"),
    [
        (
            "[merchants]\ncategories = { grocery = 1.0 }\n",
            "merchants.categories.grocery",
            "unknown merchant category",
        ),
        ("[merchants]\ncategories = { groceries = 0.5 }\n", "merchants.categories", "sum to 1"),
        ('[stimulus]\nform = "cash"\nat = 0\namount = 1\n', "stimulus.form", ""),
        ('[stimulus]\nform = "money"\nat = "30d"\namount = 1\n', "stimulus.at", "before the end"),
        ('[stimulus]\nform = "money"\nat = 0\namount = 0\n', "stimulus.amount", ""),
        (
            '[stimulus]\nform = "voucher"\nat = 0\namount = 1\n',
            "stimulus.categories",
            "no merchant of these categories",
        ),
        (
            MERCHANTS + '[stimulus]\nform = "voucher"\nat = 0\namount = 1\nexpires = "400d"\n',
            "stimulus.expires",
            "366 days",
        ),
        (
            '[escrows]\nshare = 0.1\nrelease_after = "1d"\ndeadline = "1d"\n',
            "escrows.deadline",
            "longer",
        ),
        ("[escrows]\nshare = 1.5\n", "escrows.share", ""),
    ],
)
def test_mistakes_name_their_field(extra: str, path: str, fragment: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse(extra)
    paths = [p for p, _ in info.value.errors]
    assert any(p == path or p.startswith(path) for p in paths), info.value.errors
    assert fragment in str(info.value)
