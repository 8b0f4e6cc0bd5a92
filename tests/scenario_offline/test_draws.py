"""The offline draws of a scenario run: their own seeded stream, and the distributions they
follow (sync delays with the mean the file gives)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import offline_draws as draws
from simulator.scenario_offline import ExponentialDelay, FixedDelay, LognormalDelay


def test_the_offline_stream_is_seeded_and_apart_from_the_engines() -> None:
    a, b = draws.offline_rng(7), draws.offline_rng(7)
    assert a.random(5).tolist() == b.random(5).tolist()
    assert draws.offline_rng(8).random() != draws.offline_rng(7).random()
    # the engine's own generator (seeded with the seed alone) is another stream
    assert np.random.default_rng(7).random() != draws.offline_rng(7).random()


@pytest.mark.parametrize(
    "spec",
    [
        ExponentialDelay(distribution="exponential", mean=6 * 3600),
        LognormalDelay(distribution="lognormal", mean=12 * 3600, sigma=1.0),
        LognormalDelay(distribution="lognormal", mean=3600, sigma=0.3),
    ],
    ids=["exponential", "lognormal", "lognormal-narrow"],
)
def test_sync_delays_have_the_files_mean(spec: ExponentialDelay | LognormalDelay) -> None:
    rng = draws.offline_rng(1)
    values = np.array([draws.sync_delay(rng, spec) for _ in range(40_000)])
    assert (values > 0).all()
    assert abs(values.mean() / spec.mean - 1) < 0.05


def test_a_fixed_delay_is_fixed() -> None:
    rng = draws.offline_rng(1)
    spec = FixedDelay(distribution="fixed", value=7200)
    assert {draws.sync_delay(rng, spec) for _ in range(10)} == {7200.0}


def test_offline_choices_follow_the_share_one_draw_per_payment() -> None:
    rng = draws.offline_rng(3)
    chosen = draws.offline_choices(rng, 20_000, 0.3)
    assert len(chosen) == 20_000 and abs(sum(chosen) / 20_000 - 0.3) < 0.02
    assert draws.offline_choices(rng, 0, 0.3) == []
    assert draws.offline_choices(rng, 4, 0.0) == [False] * 4
    assert draws.offline_choices(rng, 4, 1.0) == [True] * 4


def test_devices_and_compromised_shares() -> None:
    rng = draws.offline_rng(4)
    held = [draws.holds_device(rng, 0.6) for _ in range(10_000)]
    bad = [draws.compromised(rng, 0.05) for _ in range(10_000)]
    assert abs(sum(held) / 10_000 - 0.6) < 0.03
    assert abs(sum(bad) / 10_000 - 0.05) < 0.01
    assert draws.holds_device(rng, 1.0) and not draws.compromised(rng, 0.0)


def test_pick_avoids_the_payer() -> None:
    rng = draws.offline_rng(5)
    assert draws.pick(rng, ["a"], avoid="a") is None
    assert draws.pick(rng, [], avoid="a") is None
    assert {draws.pick(rng, ["a", "b", "c"], avoid="a") for _ in range(50)} == {"b", "c"}
