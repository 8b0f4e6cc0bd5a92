"""Exchange in a scenario run: households move banknotes and deposits into their wallets along
the substitution curve (and out of a running operator), merchants unload to their deposits.

Every move goes through the operator's bulk exchange (`operators.payments.bulk.exchange_many`),
so caps, the vault float and the central bank's issuance apply; a load the float cannot cover is
a liquidity shortfall, a load cut by a cap a limit hit.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np

from cbdc.errors import DomainError
from operators.payments import bulk
from operators.wallets import repository as wallet_repo
from operators.wallets import states
from simulator.network import SimNetwork
from simulator.population import OperatorPopulation
from simulator.scenario import Scenario
from simulator.tally import LIMIT_CODES, StepTally

DepositRunWindow = tuple[str, float, int, int]  # (operator, share, start, end), simulated seconds


class Exchange:
    """The scenario's exchanges on the network's operators."""

    def __init__(self, net: SimNetwork, scenario: Scenario) -> None:
        self.net = net
        self.scenario = scenario
        self.step_seconds = scenario.meta.step

    def deposits(self, pop: OperatorPopulation) -> dict[str, int]:
        """Each adopted wallet's holder's bank deposit (minor units)."""
        with self.net.state(pop.code).factory() as session:
            return wallet_repo.holder_deposit_balances(session, pop.adopted_wallets)

    def room(self, pop: OperatorPopulation) -> dict[str, int | None]:
        """How much more each adopted wallet may hold under its cap."""
        state = self.net.state(pop.code)
        with state.factory() as session:
            wallets = states.load_wallet_states(session, pop.adopted_wallets)
            balances = wallet_repo.wallet_balances(session, pop.adopted_wallets)
        return {w: bulk.cap_room(state.ctx, wallets[w], b) for w, b in balances.items()}

    def substitute(
        self, pop: OperatorPopulation, tally: StepTally, runs: list[DepositRunWindow]
    ) -> None:
        """Move the holders' banknotes and deposits into their wallets toward the substitution
        targets (and a running operator's deposits out), under each wallet's cap."""
        code = pop.code
        sub = self.scenario.substitution
        now = self.net.clock.seconds
        run_share = 0.0
        for operator, share, start, end in runs:
            if operator == code and start < now + self.step_seconds and now < end:
                slices = max(1, -(-(end - start) // self.step_seconds))
                run_share += share / slices
        if sub.cash_target == 0 and sub.deposit_target == 0 and run_share == 0:
            return
        cash_moves: list[tuple[str, int]] = []
        load_moves: list[tuple[str, int]] = []
        run_deposits = pop.run_deposit
        assert pop.moved_cash is not None and pop.moved_deposit is not None
        # what each holder wants to move, for all holders at once (the same float arithmetic
        # per element as one holder at a time: float64, truncated toward zero)
        held = np.asarray(pop.adopted, dtype=np.int64)
        want_cash = (
            sub.speed * np.maximum(0, sub.cash_target * pop.cash_start[held] - pop.moved_cash[held])
        ).astype(np.int64)
        want_cash = np.minimum(want_cash, pop.cash[held])
        want_dep = (
            sub.speed
            * np.maximum(0, sub.deposit_target * pop.deposit_start[held] - pop.moved_deposit[held])
        ).astype(np.int64)
        if run_share:
            want_dep += np.array(
                [int(run_share * run_deposits.get(pop.wallets[h], 0)) for h in pop.adopted],
                dtype=np.int64,
            )
        some = np.nonzero((want_cash > 0) | (want_dep > 0))[0]
        wants: list[tuple[int, str, int, int]] = [  # household, wallet, cash, deposit
            (h, pop.wallets[h], c, d)
            for h, c, d in zip(
                held[some].tolist(), want_cash[some].tolist(), want_dep[some].tolist(), strict=True
            )
        ]
        if not wants:
            return  # everyone holds what they want to: no need to read the caps
        room = self.room(pop)
        for h, wallet, want_cash, want_dep in wants:
            left = room.get(wallet)
            for want, moves, kind in (
                (want_cash, cash_moves, "cash"),
                (want_dep, load_moves, "deposit"),
            ):
                if want <= 0:
                    continue
                amount = want if left is None else min(want, left)
                if amount <= 0:
                    continue  # already at its cap: counted when the cap first bit
                if amount < want:
                    tally.limit_hits[code] += 1
                if left is not None:
                    left -= amount
                moves.append((wallet, amount))
                if kind == "cash":
                    pop.cash[h] -= amount
                    pop.moved_cash[h] += amount
                else:
                    pop.moved_deposit[h] += amount
        by_wallet = {w: h for h, w in pop.wallets.items()}
        exchanges: tuple[tuple[bulk.ExchangeKind, list[tuple[str, int]]], ...] = (
            ("cash_load", cash_moves),
            ("load", load_moves),
        )
        for kind, moves in exchanges:
            for outcome in self.exchange(code, kind, moves):
                if outcome.ok:
                    continue
                h = by_wallet[outcome.wallet_id]
                if kind == "cash_load":  # the banknotes stay in the pocket
                    pop.cash[h] += outcome.amount
                    pop.moved_cash[h] -= outcome.amount
                else:
                    pop.moved_deposit[h] -= outcome.amount
                if outcome.error is not None and outcome.error.code == "vault_float_insufficient":
                    tally.shortfall[code] += outcome.amount
                elif outcome.error is not None and outcome.error.code in LIMIT_CODES:
                    tally.limit_hits[code] += 1

    def exchange(
        self, code: str, kind: bulk.ExchangeKind, moves: list[tuple[str, int]]
    ) -> list[bulk.ExchangeOutcome]:
        if not moves:
            return []
        state = self.net.state(code)
        if kind != "unload":
            # Refused (reserves, quota): the loads it cannot cover are refused below.
            with contextlib.suppress(DomainError):
                state.ensure_float(sum(a for _, a in moves))
        outcomes: list[bulk.ExchangeOutcome] = []
        size = self.scenario.payments.batch_size
        for i in range(0, len(moves), size):
            chunk = moves[i : i + size]
            outcomes += state.uow.run(
                None, functools.partial(bulk.exchange_many, ctx=state.ctx, kind=kind, moves=chunk)
            )
        return outcomes

    def merchants_unload(self, populations: dict[str, OperatorPopulation]) -> None:
        """Merchants move a share of their wallet balances to their deposits."""
        share = self.scenario.payments.merchant_unload
        if share <= 0:
            return
        for code, pop in populations.items():
            if not self.net.up(code) or not pop.merchant_wallets:
                continue
            with self.net.state(code).factory() as session:
                balances = wallet_repo.wallet_balances(session, pop.merchant_wallets)
            moves = [
                (wallet, int(balance * share))
                for wallet, balance in balances.items()  # in wallet id order
                if balance > 0 and balance * share >= 1
            ]
            self.exchange(code, "unload", moves)
