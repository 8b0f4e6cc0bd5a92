"""The random side of offline use in a scenario run: which devices are compromised, which
payments are made offline, how long a device waits before it syncs, and whom a clone pays.

Every draw comes from the offline generator, a stream of its own seeded from the scenario's
seed (`offline_rng`), so a scenario without `[offline]` draws exactly what it drew before, and
one with it gives the same series from the same file and seed. Draws are made in a fixed order
(devices in registration order, payments in time order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from simulator.scenario_offline import ExponentialDelay, FixedDelay, LognormalDelay, SyncDelay

OFFLINE_STREAM = 15  # the offline generator: seeded with (scenario seed, this)


def offline_rng(seed: int) -> np.random.Generator:
    """The offline generator of a run (independent of the engine's payment draws)."""
    return np.random.default_rng([seed, OFFLINE_STREAM])


def sync_delay(rng: np.random.Generator, spec: SyncDelay) -> float:
    """Seconds a device waits, after its first offline payment (made or received) since it
    last synced, before it syncs. Lognormal: `mean` is the distribution's mean, so
    mu = ln(mean) - sigma^2 / 2."""
    if isinstance(spec, ExponentialDelay):
        return float(rng.exponential(spec.mean))
    if isinstance(spec, LognormalDelay):
        mu = math.log(spec.mean) - spec.sigma**2 / 2
        return float(rng.lognormal(mu, spec.sigma))
    assert isinstance(spec, FixedDelay)
    return float(spec.value)


def compromised(rng: np.random.Generator, share: float) -> bool:
    """Whether a household's new device is compromised (one draw per household device)."""
    return bool(rng.random() < share) if share > 0 else False


def holds_device(rng: np.random.Generator, share: float) -> bool:
    """Whether a household that adopts gets a device (one draw per household)."""
    return share >= 1.0 or bool(rng.random() < share)


def offline_choices(rng: np.random.Generator, n: int, share: float) -> list[bool]:
    """For `n` payments in time order: which ones the payer makes offline when the network is
    up (one draw per payment, made whether or not both sides hold a device, so the choice of
    one payment does not shift the draws of the next)."""
    if n == 0:
        return []
    if share <= 0:
        return [False] * n
    return (rng.random(n) < share).tolist()  # type: ignore[no-any-return]


def pick(rng: np.random.Generator, pool: Sequence[str], avoid: str) -> str | None:
    """Someone from `pool` other than `avoid` (whom a clone pays), or None."""
    if not pool or (len(pool) == 1 and pool[0] == avoid):
        return None
    while True:
        choice = pool[int(rng.integers(0, len(pool)))]
        if choice != avoid:
            return choice


__all__ = [
    "OFFLINE_STREAM",
    "compromised",
    "holds_device",
    "offline_choices",
    "offline_rng",
    "pick",
    "sync_delay",
]
