"""Programmable money in a scenario run: merchant categories, a stimulus paid as money or as a
purpose-bound expiring voucher, and escrows in the payment mix (the file's sections:
`simulator/scenario_programmable.py`).

Everything goes through the operators' own service functions, in-process, as the API routes
call them: staff register merchant categories (`operators.programmable.merchants.set_category`,
which publishes them to the central bank's registry), the agency's wallet signs a programme
and its grants, households sign voucher payments, escrows and their releases with their own
wallet keys. Expiry of the vouchers and refunds of escrows at their deadline are the services'
sweeps (`operators.state.SWEEPS`), run by the operators' job runners when the engine settles
(`simulator.settle.run_jobs`), on the simulated clock: there is no background worker in a run,
so each sweep runs from there only, and the database makes each expiry happen exactly once.

- Categories: each operator's merchants take the categories in the file's shares, in wallet
  order (the first merchants the first category).
- The agency: at each operator, a class I wallet (the programme's holders must be at the
  programme's operator, so the agency banks with every operator), funded at the start from its
  deposit with `amount` x its operator's households.
- The stimulus, at the start of the step holding `at`: to the first `households` share of the
  households with a wallet then (in adoption order), `amount` each: an ordinary payment
  (`money`), or a grant of a voucher of the operator's programme (`voucher`), expiring
  `expires` after `at`, spendable at merchants of `categories`.
- Spending: the same payments as without it (the seeded draws do not depend on the form). A
  payment by a voucher holder to an eligible merchant, before the expiry, that the voucher
  covers is made from the voucher; anything else is made with ordinary money.
- Escrows: of the payments (not made from a voucher), a share drawn from a stream of its own
  is made as an escrow (deadline `deadline` after), released in full by the payer
  `release_after` later, except a share `refunded` that is never released and goes back to the
  payer at the deadline (the escrow sweep).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from cbdc.addresses import routing_code
from cbdc.clock import iso
from cbdc.crypto import SigningKey
from cbdc.errors import DomainError
from cbdc.policy import WalletClass
from operators.payments import batch, bulk
from operators.programmable import escrow_releases, escrows, merchants, programmes, voucher_payments
from simulator.network import SimNetwork
from simulator.population import OperatorPopulation, identity
from simulator.scenario import Scenario
from simulator.tally import StepTally
from wallets import orders

AGENCY_NUMBERS = 90_000_000  # the agency's evidence numbers (households 0.., merchants 50M..)
ESCROW_STREAM = 17  # the escrows' random stream: [seed, 17]

Item = tuple[float, str, str, int]  # (time, payer, payee, amount)


@dataclass
class PendingRelease:
    due: float
    code: str
    escrow_id: str
    payer: str
    amount: int


class ProgrammableWorld:
    def __init__(
        self, net: SimNetwork, scenario: Scenario, populations: dict[str, OperatorPopulation]
    ) -> None:
        self.net, self.scenario, self.populations = net, scenario, populations
        self.stimulus, self.escrows = scenario.stimulus, scenario.escrows
        self.rng = np.random.default_rng([scenario.meta.seed, ESCROW_STREAM])
        self.category: dict[str, str] = {}  # merchant wallet -> category
        self.agency: dict[str, tuple[str, SigningKey]] = {}  # operator -> (wallet, key)
        self.programme: dict[str, str] = {}  # operator -> programme id
        self.vouchers: dict[str, int] = {}  # holder wallet -> what the engine knows is left
        self.paid = False
        self.expires_at: float | None = None  # simulated seconds
        self.releases: list[PendingRelease] = []
        self.counter = 0
        self.summary: Counter[str] = Counter()
        self.by_category: Counter[str] = Counter()  # value paid to merchants, by category
        self.voucher_by_category: Counter[str] = Counter()
        self.step_paid: Counter[str] = Counter()  # per operator: stimulus paid this step
        self._categorise()
        if self.stimulus is not None:
            for code in net.codes:
                self._open_agency(code)

    # ------------------------------------------------------------ setup

    def _categorise(self) -> None:
        mix = self.scenario.merchants
        if mix is None:
            return
        for code, pop in self.populations.items():
            n = len(pop.merchant_wallets)
            counts = {c: int(share * n) for c, share in mix.categories.items()}
            largest = max(mix.categories, key=lambda c: mix.categories[c])
            counts[largest] += n - sum(counts.values())
            labels = [c for c in mix.categories for _ in range(counts[c])]
            state = self.net.state(code)
            for wallet, category in zip(pop.merchant_wallets, labels, strict=True):
                state.uow.run(
                    None,
                    functools.partial(
                        merchants.set_category, ctx=state.ctx, wallet_id=wallet, category=category
                    ),
                )
                self.category[wallet] = category

    def _open_agency(self, code: str) -> None:
        assert self.stimulus is not None
        state, key = self.net.state(code), SigningKey.generate()
        funds = self.stimulus.amount * max(1, self.populations[code].households)
        who = identity(f"Stimulus agency {code}", AGENCY_NUMBERS)

        def open_wallet(session: Session) -> str:
            customer = bulk.add_customers(session, state.ctx, [bulk.NewCustomer(who, funds)])
            new = bulk.NewWallet(customer[0], who, WalletClass.parse("I"), key.public_key)
            return bulk.open_wallets(session, state.ctx, [new])[0]

        wallet = state.uow.run(None, open_wallet)
        state.ensure_float(funds)
        loaded = state.uow.run(
            None,
            functools.partial(
                bulk.exchange_many, ctx=state.ctx, kind="load", moves=[(wallet, funds)]
            ),
        )
        assert loaded[0].error is None, loaded[0].error
        self.agency[code] = (wallet, key)

    def agency_wallets(self) -> set[str]:
        return {wallet for wallet, _ in self.agency.values()}

    # ------------------------------------------------------------ the stimulus

    def step_start(self, start: int, end: int) -> None:
        """Pay the stimulus at the start of the step holding its time."""
        s = self.stimulus
        if s is None or self.paid or not s.at < end:
            return
        self.paid = True
        self.expires_at = float(s.at + s.expires)
        for code in self.net.codes:
            pop = self.populations[code]
            holders = pop.adopted_wallets[: int(s.households * len(pop.adopted_wallets) + 0.5)]
            if not holders or not self.net.up(code):
                self.summary["stimulus_missed"] += len(holders)
                continue
            if s.form == "money":
                self._pay_money(code, holders)
            else:
                self._grant_vouchers(code, holders)

    def _pay_money(self, code: str, holders: list[str]) -> None:
        assert self.stimulus is not None
        state, (agency, _) = self.net.state(code), self.agency[code]
        now = self.net.clock.now()
        part = [
            batch.Instruction(
                payer=agency, payee=holder, amount=self.stimulus.amount, nonce=f"stim-{i}", at=now
            )
            for i, holder in enumerate(holders)
        ]
        outcomes = state.uow.run(
            None, functools.partial(batch.pay_many, ctx=state.ctx, instructions=part, now=now)
        )
        for outcome in outcomes:
            self._count_stimulus(outcome.ok, self.stimulus.amount, outcome.code, code)

    def _grant_vouchers(self, code: str, holders: list[str]) -> None:
        s = self.stimulus
        assert s is not None and self.expires_at is not None
        state, (agency, key) = self.net.state(code), self.agency[code]
        expires = self.net.clock.epoch + timedelta(seconds=self.expires_at)
        order = self._stamp(
            orders.programme_order(
                issuer=agency,
                name=f"stimulus {self.scenario.meta.name}",
                categories=list(s.categories),
                per_holder=s.amount,
                expires_at=iso(expires),
                currency=self.scenario.meta.currency,
                nonce="stimulus-programme",
            )
        )
        created = state.uow.run(
            None,
            functools.partial(
                programmes.create, ctx=state.ctx, order=order, signature=key.sign_json(order)
            ),
        )
        programme = str(created["programme_id"])
        self.programme[code] = programme
        for i, holder in enumerate(holders):
            grant = self._stamp(
                orders.voucher_grant_order(
                    programme=programme, holder=holder, amount=s.amount, nonce=f"grant-{i}"
                )
            )
            try:
                state.uow.run(
                    None,
                    functools.partial(
                        programmes.grant,
                        ctx=state.ctx,
                        programme_id=programme,
                        order=grant,
                        signature=key.sign_json(grant),
                    ),
                )
            except DomainError as exc:
                self._count_stimulus(False, s.amount, exc.code, code)
                continue
            self.vouchers[holder] = s.amount
            self._count_stimulus(True, s.amount, None, code)

    def _count_stimulus(self, ok: bool, amount: int, code: str | None, op: str) -> None:
        if ok:
            self.step_paid[op] += amount
            self.summary["stimulus_recipients"] += 1
            self.summary["stimulus_paid"] += amount
        else:
            self.summary[f"stimulus_refused.{code}"] += 1

    # ------------------------------------------------------------ payments

    def take(self, code: str, items: list[Item]) -> tuple[list[Item], list[tuple[str, Item]]]:
        """Split an operator's payments of a slice into the ordinary ones and those made from
        a voucher or as an escrow, ("voucher" | "escrow", item) each, in order."""
        special: list[tuple[str, Item]] = []
        ordinary: list[Item] = []
        share = self.escrows.share if self.escrows is not None else 0.0
        draws = self.rng.random(len(items)) if share > 0 else None
        for k, item in enumerate(items):
            if self._from_voucher(item):
                self.vouchers[item[1]] -= item[3]  # set aside; given back if refused
                special.append(("voucher", item))
            elif draws is not None and draws[k] < share:
                special.append(("escrow", item))
            else:
                ordinary.append(item)
        return ordinary, special

    def _from_voucher(self, item: Item) -> bool:
        s = self.stimulus
        if s is None or s.form != "voucher" or self.expires_at is None:
            return False
        t, payer, payee, amount = item
        return (
            t < self.expires_at
            and self.vouchers.get(payer, 0) >= amount
            and self.category.get(payee) in s.categories
        )

    def record(self, items: list[Item], outcomes: list[batch.Outcome]) -> None:
        """Ordinary payments made: their value to merchants by category."""
        for (_, _, payee, amount), outcome in zip(items, outcomes, strict=True):
            if outcome.ok and payee in self.category:
                self.by_category[self.category[payee]] += amount

    def run_special(self, code: str, special: list[tuple[str, Item]], tally: StepTally) -> None:
        """The voucher payments and escrows of an operator's slice at the slice's time (the
        clock): in one transaction, each in a savepoint of its own (a refusal undoes only its
        own writes, as its own transaction would)."""
        if not special:
            return
        state = self.net.state(code)

        def work(session: Session) -> list[batch.Outcome]:
            outcomes = []
            for kind, (_, payer, payee, amount) in special:
                run = self._voucher if kind == "voucher" else self._escrow
                try:
                    with session.begin_nested():
                        outcomes.append(run(session, code, payer, payee, amount))
                except DomainError as exc:
                    outcomes.append(batch.Outcome(ok=False, error=exc))
            return outcomes

        outcomes: list[batch.Outcome] = state.uow.run(None, work)
        for (kind, item), outcome in zip(special, outcomes, strict=True):
            _, payer, payee, amount = item
            tally.payment(code, outcome, amount)
            if kind == "voucher" and not outcome.ok:
                self.vouchers[payer] = self.vouchers.get(payer, 0) + amount
            if outcome.ok and kind == "voucher":
                self.voucher_by_category[self.category[payee]] += amount
            if outcome.ok and payee in self.category:
                self.by_category[self.category[payee]] += amount
            if outcome.ok and kind == "escrow":
                self._opened(code, payer, amount, outcome)

    def _voucher(
        self, session: Session, code: str, payer: str, payee: str, amount: int
    ) -> batch.Outcome:
        state = self.net.state(code)
        order = self._stamp(
            orders.voucher_payment_order(
                payer=payer,
                payee=payee,
                amount=amount,
                programme=self.programme[code],
                currency=self.scenario.meta.currency,
                nonce=self._nonce("voucher"),
            )
        )
        signature = self._key(code, payer).sign_json(order)
        voucher_payments.pay(session, state.ctx, order=order, signature=signature)
        return batch.Outcome(ok=True, cross=routing_code(payee) != code)

    def _escrow(
        self, session: Session, code: str, payer: str, payee: str, amount: int
    ) -> batch.Outcome:
        assert self.escrows is not None
        state, now = self.net.state(code), self.net.clock.seconds
        deadline = self.net.clock.epoch + timedelta(seconds=now + self.escrows.deadline)
        order = self._stamp(
            orders.escrow_order(
                payer=payer,
                payee=payee,
                amount=amount,
                currency=self.scenario.meta.currency,
                deadline=iso(deadline),
                nonce=self._nonce("escrow"),
            )
        )
        signature = self._key(code, payer).sign_json(order)
        created = escrows.create(session, state.ctx, order=order, signature=signature)
        return batch.Outcome(ok=True, order_id=created["escrow_id"])

    def _opened(self, code: str, payer: str, amount: int, outcome: batch.Outcome) -> None:
        """An escrow opened (committed): its release is due `release_after` later, unless it
        is one of the share never released (refunded at the deadline)."""
        assert self.escrows is not None
        self.summary["escrows_opened"] += 1
        if self.rng.random() >= self.escrows.refunded:
            due = self.net.clock.seconds + self.escrows.release_after
            self.releases.append(PendingRelease(due, code, str(outcome.order_id), payer, amount))

    def release_due(self, until: float) -> None:
        """The payers release their escrows due before `until` (simulated seconds)."""
        due = [r for r in self.releases if r.due < until and self.net.up(r.code)]
        self.releases = [r for r in self.releases if r not in due]
        for r in due:
            state = self.net.state(r.code)
            order = self._stamp(
                orders.escrow_release_order(
                    escrow=r.escrow_id, amount=r.amount, by=r.payer, nonce=self._nonce("release")
                )
            )
            signature = self._key(r.code, r.payer).sign_json(order)
            try:
                result = state.uow.run(
                    None,
                    functools.partial(
                        escrow_releases.release,
                        ctx=state.ctx,
                        escrow_id=r.escrow_id,
                        order=order,
                        signature=signature,
                    ),
                )
            except DomainError as exc:
                self.summary[f"escrow_release_refused.{exc.code}"] += 1
                continue
            self.summary["escrows_released"] += 1
            del result  # settles (cross-operator) when the engine settles

    # ------------------------------------------------------------ helpers

    def expire(self, now: float) -> None:
        """Forget the vouchers past their expiry (the services' sweep returns them)."""
        if self.expires_at is not None and now >= self.expires_at and self.vouchers:
            self.vouchers.clear()

    def _key(self, code: str, wallet: str) -> SigningKey:
        keys = self.populations[code].keys
        assert keys is not None
        return keys[wallet]

    def _stamp(self, order: dict[str, Any]) -> dict[str, Any]:
        """The order created now on the simulated clock (the builders use the wall clock)."""
        return {**order, "created_at": iso(self.net.clock.now())}

    def _nonce(self, kind: str) -> str:
        self.counter += 1
        return f"sim-{kind}-{self.counter}"
