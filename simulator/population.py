"""The simulated customers of each operator: households and merchants.

Households are customers of their operator from the start, with banknotes (tracked here: cash
is outside every ledger) and a deposit (in the operator's ledger). They open a wallet when they
adopt the digital currency, in an order fixed by the seed. Merchants have a wallet from the
start. Every random draw comes from the run's seeded generator, in a fixed order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.orm import Session

from cbdc.crypto import SigningKey
from cbdc.identity import make_bank_account, make_resident_id
from cbdc.policy import WalletClass
from operators.payments import bulk
from simulator.network import SimNetwork
from simulator.scenario import OperatorSpec, Scenario

CHUNK = 5000  # rows per onboarding transaction
MERCHANT_NUMBERS = 50_000_000  # merchants' evidence is numbered from here, households' from 0


def identity(name: str, number: int) -> dict[str, str]:
    """Well-formed evidence for every class, distinct for each `number` (< 10**8): the policy
    lets one ID number hold one wallet of a class, and one phone one class IV wallet, at an
    operator (`[uniqueness]`), so simulated people must not share theirs."""
    return {
        "display_name": name,
        "phone": f"+86139{number:08d}",
        "id_number": make_resident_id(f"110101{number:011d}"),
        "bank_account": make_bank_account(f"6217{number:011d}"),
    }


@dataclass
class OperatorPopulation:
    code: str
    classes: list[WalletClass]  # per household
    customers: list[int]  # per household
    cash: np.ndarray  # banknotes per household, minor units
    cash_start: np.ndarray
    deposit_start: np.ndarray
    adoption_order: np.ndarray  # household indexes, first adopters first
    wallets: dict[int, str] = field(default_factory=dict)  # household index -> wallet id
    adopted: list[int] = field(default_factory=list)  # household indexes with a wallet
    adopted_wallets: list[str] = field(default_factory=list)  # same order as `adopted`
    merchant_wallets: list[str] = field(default_factory=list)
    moved_cash: np.ndarray | None = None
    moved_deposit: np.ndarray | None = None
    run_deposit: dict[str, int] = field(default_factory=dict)  # wallet -> deposit when run began
    # households' wallet keys, kept when they sign orders (vouchers, escrows:
    # simulator/programmable.py); None: not kept
    keys: dict[str, SigningKey] | None = None

    @property
    def households(self) -> int:
        return len(self.customers)


def class_assignment(spec: OperatorSpec, rng: np.random.Generator) -> list[WalletClass]:
    """Exactly round(share * households) of each class (remainder to the largest share),
    shuffled."""
    n = spec.households
    names = sorted(spec.class_mix, key=lambda c: WalletClass.parse(c))
    counts = {c: int(spec.class_mix[c] * n) for c in names}
    largest = max(names, key=lambda c: spec.class_mix[c])
    counts[largest] += n - sum(counts.values())
    classes = [WalletClass.parse(c) for c in names for _ in range(counts[c])]
    order = rng.permutation(n)
    return [classes[i] for i in order]


def seed(
    net: SimNetwork, scenario: Scenario, rng: np.random.Generator
) -> dict[str, OperatorPopulation]:
    keep_keys = scenario.stimulus is not None or scenario.escrows is not None
    return {spec.code: _seed_operator(net, spec, rng, keep_keys) for spec in scenario.operators}


def _seed_operator(
    net: SimNetwork, spec: OperatorSpec, rng: np.random.Generator, keep_keys: bool
) -> OperatorPopulation:
    state = net.state(spec.code)
    ctx = state.ctx
    classes = class_assignment(spec, rng)
    order = rng.permutation(spec.households)
    merchant_class = WalletClass.parse(spec.merchant_class)

    def households(session: Session, first: int, last: int) -> list[int]:
        people = [
            bulk.NewCustomer(identity(f"Household {spec.code}-{i}", i), spec.household_deposit)
            for i in range(first, last)
        ]
        return bulk.add_customers(session, ctx, people)

    def merchants(session: Session, first: int, last: int) -> list[str]:
        people = [
            bulk.NewCustomer(
                identity(f"Merchant {spec.code}-{i}", MERCHANT_NUMBERS + i), spec.merchant_deposit
            )
            for i in range(first, last)
        ]
        ids = bulk.add_customers(session, ctx, people)
        wallets = [
            bulk.NewWallet(cid, p.identity, merchant_class, SigningKey.generate().public_key)
            for cid, p in zip(ids, people, strict=True)
        ]
        return bulk.open_wallets(session, ctx, wallets)

    customers: list[int] = []
    for first in range(0, spec.households, CHUNK):
        last = min(spec.households, first + CHUNK)
        customers += state.uow.run(None, functools.partial(households, first=first, last=last))
    merchant_wallets: list[str] = []
    for first in range(0, spec.merchants, CHUNK):
        last = min(spec.merchants, first + CHUNK)
        merchant_wallets += state.uow.run(
            None, functools.partial(merchants, first=first, last=last)
        )
    cash = np.full(spec.households, spec.household_cash, dtype=np.int64)
    return OperatorPopulation(
        code=spec.code,
        classes=classes,
        customers=customers,
        cash=cash,
        cash_start=cash.copy(),
        deposit_start=np.full(spec.households, spec.household_deposit, dtype=np.int64),
        adoption_order=order,
        merchant_wallets=merchant_wallets,
        moved_cash=np.zeros(spec.households, dtype=np.int64),
        moved_deposit=np.zeros(spec.households, dtype=np.int64),
        keys={} if keep_keys else None,
    )


def adopt(net: SimNetwork, pop: OperatorPopulation, target: int) -> int:
    """Open wallets for households until `target` of them hold one; returns how many opened."""
    target = min(target, pop.households)
    new = [int(h) for h in pop.adoption_order[len(pop.adopted) : target]]
    if not new:
        return 0
    state = net.state(pop.code)
    ctx = state.ctx
    for start in range(0, len(new), CHUNK):
        chunk = new[start : start + CHUNK]
        keys = [SigningKey.generate() for _ in chunk]
        wallets = [
            bulk.NewWallet(
                pop.customers[h],
                identity(f"Household {pop.code}-{h}", h),
                pop.classes[h],
                key.public_key,
            )
            for h, key in zip(chunk, keys, strict=True)
        ]
        ids = state.uow.run(None, functools.partial(bulk.open_wallets, ctx=ctx, wallets=wallets))
        for h, wallet_id, key in zip(chunk, ids, keys, strict=True):
            if pop.keys is not None:
                pop.keys[wallet_id] = key
            pop.wallets[h] = wallet_id
            pop.adopted.append(h)
            pop.adopted_wallets.append(wallet_id)
    return len(new)
