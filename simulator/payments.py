"""Payments in a scenario run: drawn from the seeded generator, run through the operator's
batch payment path (`operators.payments.batch.pay_many`), each batch at its last payment's
simulated time."""

from __future__ import annotations

import functools
from datetime import timedelta

import numpy as np

from operators.payments import batch
from simulator.network import SimNetwork
from simulator.population import OperatorPopulation
from simulator.scenario import Amount, FixedAmount, LognormalAmount, Payments, UniformAmount

Drawn = tuple[float, str, str, str, int]  # (time, operator, payer, payee, amount)
Item = tuple[float, str, str, int]  # one operator's payment: (time, payer, payee, amount)


def draw_amounts(rng: np.random.Generator, spec: Amount, n: int) -> np.ndarray:
    """`n` payment amounts (minor units, at least 1) drawn from the scenario's distribution."""
    if isinstance(spec, LognormalAmount):
        values = spec.median * np.exp(spec.sigma * rng.standard_normal(n))
        if spec.max is not None:
            values = np.minimum(values, spec.max)
    elif isinstance(spec, UniformAmount):
        values = rng.uniform(spec.min, spec.max, n)
    else:
        assert isinstance(spec, FixedAmount)
        values = np.full(n, spec.value, dtype=np.float64)
    return np.maximum(1, np.rint(values)).astype(np.int64)


def draw(
    rng: np.random.Generator,
    p: Payments,
    codes: list[str],
    populations: dict[str, OperatorPopulation],
    start: int,
    step_seconds: int,
) -> list[Drawn]:
    """The payments of the step starting at `start` (simulated seconds), in time order."""
    drawn: list[Drawn] = []
    adopted = {c: pop.adopted_wallets for c, pop in populations.items()}
    merchants = {c: pop.merchant_wallets for c, pop in populations.items()}
    for code in codes:
        payers = adopted[code]
        if not payers:
            continue
        n = int(rng.poisson(p.rate * len(payers)))
        if n == 0:
            continue
        payer_idx = rng.integers(0, len(payers), n)
        to_merchant = rng.random(n) < p.to_merchants
        cross = rng.random(n) < p.cross_operator
        others = [c for c in codes if c != code]
        target_idx = rng.integers(0, max(1, len(others)), n)
        pick = rng.random(n)
        amounts = draw_amounts(rng, p.amount, n)
        times = start + rng.random(n) * step_seconds
        # plain lists: indexing numpy arrays one element at a time costs more than the rest
        rows = zip(
            times.tolist(),
            payer_idx.tolist(),
            to_merchant.tolist(),
            cross.tolist(),
            target_idx.tolist(),
            pick.tolist(),
            amounts.tolist(),
            strict=True,
        )
        for t, payer_k, merchant_k, cross_k, target_k, pick_k, amount in rows:
            target = others[target_k] if cross_k and others else code
            pool = merchants[target] if merchant_k and merchants[target] else adopted[target]
            if not pool:
                continue
            payee = pool[int(pick_k * len(pool))]
            payer = payers[payer_k]
            if payee == payer:
                continue
            drawn.append((t, code, payer, payee, amount))
    drawn.sort(key=lambda d: d[0])
    return drawn


def pay_all(
    net: SimNetwork, batch_size: int, code: str, work: tuple[int, list[Item]]
) -> list[batch.Outcome]:
    """One operator's payments of a slice ((time, payer, payee, amount) each, numbered
    from `work[0] + 1`), in batches, each batch at its last payment's time. The
    instructions are built here, batch by batch, in the operator's thread."""
    first, items = work
    state = net.state(code)
    epoch = net.clock.epoch
    size = batch_size
    outcomes: list[batch.Outcome] = []
    for i in range(0, len(items), size):
        part = [
            batch.Instruction(
                payer=payer,
                payee=payee,
                amount=amount,
                nonce=f"sim-{first + i + k + 1}",
                at=epoch + _seconds(t),
            )
            for k, (t, payer, payee, amount) in enumerate(items[i : i + size])
        ]
        at = part[-1].at
        outcomes += state.uow.run(
            None,
            functools.partial(batch.pay_many, ctx=state.ctx, instructions=part, now=at),
        )
    return outcomes


def _seconds(t: float) -> timedelta:
    return timedelta(seconds=t)
