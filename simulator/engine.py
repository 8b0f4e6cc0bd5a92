"""The scenario engine: a scenario file run on the real two-tier ledger, step by step.

Each step of simulated time:
  1. events that fall in the step start (a deposit run, new limits, a settlement-mode switch,
     an outage or its end);
  2. adoption: households open wallets up to the adoption curve;
  3. substitution: adopters move banknotes (cash-load) and deposits (load) into their wallets
     toward the targets, and a running operator's households pull their deposits out; loads
     never exceed a wallet's balance cap (a cut load counts as a limit hit), and a load the
     vault float cannot cover after asking the central bank for issuance is a liquidity
     shortfall;
  4. payments, drawn from the seeded generator, run through the operators' batch payment path
     (`operators.payments.batch.pay_many`) in time slices of the net settlement interval; after each
     slice, cross-operator payments settle: RTGS by the operators' outbox jobs (a signed
     settlement at the central bank per payment), net by a clearing cycle; with programmable
     money (`simulator/programmable.py`) the stimulus is paid at the start of its step, and a
     slice's payments from vouchers and escrows (signed orders) run after its batch, then the
     escrow releases due; the services' sweeps (voucher expiry, escrow deadlines) run with
     the jobs when the engine settles;
  5. merchants unload to their deposits; vault water marks trigger issuance or redemption;
  6. figures are read from the databases and the cross-tier invariants checked.

Every money movement is the services' own code against PostgreSQL, so every limit, rule and
database invariant applies. The same file and seed give the same series (wall-clock timings are
kept apart in timing.csv).
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from simulator import payments, settle
from simulator.exchange import DepositRunWindow, Exchange
from simulator.metrics import observe
from simulator.network import SimNetwork, apply_limits, side_by_side
from simulator.offline import OfflineWorld
from simulator.population import OperatorPopulation, adopt, seed
from simulator.programmable import ProgrammableWorld
from simulator.programmable_metrics import ProgrammableSeries
from simulator.scenario import DepositRun, Outage, Scenario, SetLimits, SettlementModeSwitch
from simulator.scenario_offline import NetworkDown
from simulator.tally import StepTally

Progress = Callable[[int, int, dict[str, Any]], None]


class Engine:
    def __init__(self, scenario: Scenario, server_url: str, *, full_checks: bool = False):
        self.scenario = scenario
        self.full_checks = full_checks
        self.rng = np.random.default_rng(scenario.meta.seed)
        self.net = SimNetwork(scenario, server_url)
        self.codes = self.net.codes
        self.step_seconds = scenario.meta.step
        self.steps = scenario.steps
        self.populations: dict[str, OperatorPopulation] = seed(self.net, scenario, self.rng)
        self.exchange = Exchange(self.net, scenario)
        # offline devices and the customers' network (simulator/offline.py)
        self.offline: OfflineWorld | None = None
        if scenario.offline is not None or any(isinstance(e, NetworkDown) for e in scenario.events):
            self.offline = OfflineWorld(self.net, scenario, self.populations)
        self.offline_summary: dict[str, Any] | None = None
        # merchant categories, a stimulus, escrows (simulator/programmable.py)
        self.programmable: ProgrammableWorld | None = None
        self.programmable_series: ProgrammableSeries | None = None
        self.programmable_summary: dict[str, Any] | None = None
        if scenario.merchants or scenario.stimulus or scenario.escrows:
            self.programmable = ProgrammableWorld(self.net, scenario, self.populations)
            if scenario.stimulus or scenario.escrows:
                self.programmable_series = ProgrammableSeries(self.net, self.programmable)
        self.events = list(scenario.events)
        self.runs: list[DepositRunWindow] = []
        self.outages: dict[str, int] = {}  # operator -> end of outage (simulated seconds)
        self.nonce = 0
        self.previous: dict[str, Any] | None = None
        self.net_paid: dict[str, int] = {}  # per operator, net settlement paid so far
        self.series: list[dict[str, int | float]] = []
        self.timing: list[dict[str, float]] = []
        self.settling = 0.0  # wall seconds of settlement in the current step
        self.checks_run = 0
        self.checks_failed: list[dict[str, Any]] = []
        self.totals: Counter[str] = Counter()
        self.failed_totals: Counter[str] = Counter()
        _, checks = observe(self.net, full=True)
        self._record_checks(checks, step=-1)
        self.previous, _ = observe(self.net, full=False)

    # ------------------------------------------------------------ the loop

    def run(self, progress: Progress | None = None) -> None:
        """Every step. The cyclic garbage collector stops every thread while it walks the heap,
        and the engine's heap is millions of long-lived objects (populations, wallet ids):
        measured, its collections took a fifth of a run (decision 55). So each step freezes
        what is alive when it starts (those objects are not walked again), and young
        collections run every 500,000 allocations; both are undone when the run ends."""
        thresholds = gc.get_threshold()
        gc.set_threshold(500_000, 20, 20)
        try:
            self._steps(progress)
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()

    def _steps(self, progress: Progress | None) -> None:
        for step in range(self.steps):
            gc.collect()  # what the last step left, before what is alive now is set aside
            gc.freeze()
            started = time.perf_counter()
            tally = StepTally(self.codes)
            start = step * self.step_seconds
            self.net.clock.seconds = start
            self._events(start)
            if not self._customers_offline(start):
                self._open_and_load(start + self.step_seconds, tally)
            if self.offline is not None:
                self.offline.register_new(start)
            if self.programmable is not None:
                self.programmable.step_start(start, start + self.step_seconds)
            self.net.analyze()  # autovacuum is off on the run's databases
            setup = time.perf_counter() - started
            self.settling = 0.0
            payments = self._payments(step, tally)
            self.net.clock.seconds = start + self.step_seconds
            if not self._customers_offline(start + self.step_seconds - 1):
                self.exchange.merchants_unload(self.populations)
            self._settle()
            wall = time.perf_counter() - started
            self._observe(step, tally, last=step == self.steps - 1)
            rate = payments / wall if wall > 0 else 0.0
            self.timing.append(
                {
                    "step": step,
                    "wall_seconds": round(wall, 4),
                    "payments_per_second": round(rate, 1),
                    # where the step's wall time went: opening and loading wallets, the
                    # payment batches, settlement (clearing cycles, outbox jobs, unloads)
                    "setup_seconds": round(setup, 4),
                    "payments_seconds": round(wall - setup - self.settling, 4),
                    "settlement_seconds": round(self.settling, 4),
                }
            )
            if progress is not None:
                progress(step + 1, self.steps, {"payments_per_second": rate})

    # ------------------------------------------------------------ events

    def _events(self, start: int) -> None:
        end = start + self.step_seconds
        for code, until in list(self.outages.items()):
            if until <= start:
                self.net.down.discard(code)
                del self.outages[code]  # the others' retries to it are due by now
        while self.events and self.events[0].at < end:
            event = self.events.pop(0)
            if isinstance(event, DepositRun):
                self.runs.append((event.operator, event.share, event.at, event.at + event.over))
                pop = self.populations[event.operator]
                adopt(self.net, pop, pop.households)  # a run: everyone gets a wallet
                pop.run_deposit = self.exchange.deposits(pop)
            elif isinstance(event, SetLimits):
                for code in [event.operator] if event.operator else self.codes:
                    policy = apply_limits(
                        self.net.policy(code), {event.wallet_class: event.given()}
                    )
                    self.net.set_policy(code, policy)
            elif isinstance(event, SettlementModeSwitch):
                settle.settle(self.net)
                for code in self.codes:
                    self.net.state(code).ctx.settlement_mode = event.mode
            elif isinstance(event, Outage):
                self.net.down.add(event.operator)
                self.outages[event.operator] = event.at + event.length
            elif isinstance(event, NetworkDown):
                assert self.offline is not None  # made for any scenario with this event
                self.offline.network_down(event.at, event.length)

    def _customers_offline(self, t: float) -> bool:
        """Whether the customers' network is down at simulated time t (`network_down`): then
        no wallet opens, loads or unloads."""
        return self.offline is not None and self.offline.is_down(t)

    def _open_and_load(self, at: int, tally: StepTally) -> None:
        """Households open wallets up to the adoption curve, then move cash and deposits in
        along the substitution curve: each operator in its own thread, one after the other
        within it, so that one operator's key generation (Python) overlaps another's loads
        (its database). Each touches only its own population, database and tally entries."""
        share = self.scenario.adoption.share_at(at)

        def work(pop: OperatorPopulation) -> None:
            adopt(self.net, pop, int(share * pop.households + 0.5))
            if pop.adopted:
                self.exchange.substitute(pop, tally, self.runs)

        side_by_side(work, [pop for code, pop in self.populations.items() if self.net.up(code)])

    # ------------------------------------------------------------ payments

    def _payments(self, step: int, tally: StepTally) -> int:
        """Draw the step's payments and run them, slice by slice; returns how many ran."""
        start = step * self.step_seconds
        drawn = payments.draw(
            self.rng,
            self.scenario.payments,
            self.codes,
            self.populations,
            start,
            self.step_seconds,
        )
        # Net settlement clears every `net_interval` of simulated time, so the step's payments
        # run in slices of it with a clearing cycle after each; RTGS settles after each slice.
        netting = self.net.state(self.codes[0]).ctx.settlement_mode == "net"
        mode_interval = self.scenario.settlement.net_interval if netting else self.step_seconds
        boundaries = np.arange(
            start, start + self.step_seconds, min(mode_interval, self.step_seconds)
        )
        done = 0
        cursor = 0
        for b_index, b_start in enumerate(boundaries):
            b_end = (
                boundaries[b_index + 1]
                if b_index + 1 < len(boundaries)
                else start + self.step_seconds
            )
            upto = cursor
            while upto < len(drawn) and drawn[upto][0] < b_end:
                upto += 1
            chunk = drawn[cursor:upto]
            cursor = upto
            if self.offline is not None:  # offline payments and syncs first, in time order
                online = self.offline.run_slice(chunk, float(b_end), tally)
                done += len(chunk) - len(online)
                chunk = online
            self.net.clock.seconds = float(b_start)
            by_operator: dict[str, list[tuple[float, str, str, int]]] = {}
            for t, code, payer, payee, amount in chunk:
                by_operator.setdefault(code, []).append((t, payer, payee, amount))
            work: dict[str, tuple[int, list[tuple[float, str, str, int]]]] = {}
            special: dict[str, list[tuple[str, payments.Item]]] = {}  # vouchers, escrows
            for code in self.codes:
                items = by_operator.get(code, [])
                if not items:
                    continue
                if not self.net.up(code):
                    tally.failed[code] += len(items)
                    tally.failed_by_reason["operator_unavailable"] += len(items)
                    continue
                if self.programmable is not None:
                    items, special[code] = self.programmable.take(code, items)
                work[code] = (self.nonce, items)  # nonces sim-<n+1>.. in operator order
                self.nonce += len(items)
            # Operators have their own databases and customers: their batches of a slice run
            # side by side (one thread each), so one operator's Python overlaps another's
            # database work. Outcomes are tallied afterwards in operator order.
            results = side_by_side(self._pay_all, list(work.items()))
            outcomes = dict(zip(work, results, strict=True))
            for code, (_, items) in work.items():
                for item, outcome in zip(items, outcomes[code], strict=True):
                    tally.payment(code, outcome, item[3])
                if self.programmable is not None:
                    self.programmable.record(items, outcomes[code])
                done += len(items)
            if self.programmable is not None:
                for code, made in special.items():
                    self.programmable.run_special(code, made, tally)
                    done += len(made)
                self.programmable.release_due(float(b_end))
            self.net.clock.seconds = float(b_end)
            self._settle()  # the services' sweeps too: vouchers' expiry, escrows' deadlines
            if self.programmable is not None:
                self.programmable.expire(float(b_end))
        return done

    def _settle(self) -> None:
        started = time.perf_counter()
        settle.settle(self.net)
        self.settling += time.perf_counter() - started

    def _pay_all(self, work: tuple[str, tuple[int, list[payments.Item]]]) -> list[Any]:
        code, numbered = work
        return payments.pay_all(self.net, self.scenario.payments.batch_size, code, numbered)

    # ------------------------------------------------------------ observation

    def _observe(self, step: int, tally: StepTally, *, last: bool) -> None:
        figures, checks = observe(self.net, full=self.full_checks or last)
        self._record_checks(checks, step)
        prev = self.previous or figures
        row: dict[str, int | float] = {"step": step, "time_s": (step + 1) * self.step_seconds}
        ops = figures["operators"]
        prev_ops = prev["operators"]
        net_paid = settle.net_paid(self.net)
        prev_net, self.net_paid = self.net_paid, net_paid
        per: dict[str, dict[str, int]] = {}
        for code in self.codes:
            o = ops[code]
            rtgs = o["rtgs_settled_total"] - prev_ops[code]["rtgs_settled_total"]
            netted = net_paid.get(code, 0) - prev_net.get(code, 0)
            per[code] = {
                "deposits": o["deposits"],
                "reserves": o["reserves"],
                "vault_float": o["vault_float"],
                "wallet_balances": o["wallet_balances"],
                "cbdc_outstanding": o["cbdc_outstanding"],
                "cash_on_hand": o["cash_on_hand"],
                "gross_settlement": tally.gross[code],
                "net_settlement": rtgs + netted,
                "liquidity_need": rtgs + netted,
                "liquidity_shortfall": tally.shortfall[code],
                "payments_ok": tally.ok[code],
                "payments_failed": tally.failed[code],
                "limit_hits": tally.limit_hits[code],
                "aml_alerts": o["aml_alerts_total"] - prev_ops[code]["aml_alerts_total"],
            }
        if self.offline is not None and self.offline.enabled:
            for code, extra in self.offline.figures(ops).items():
                per[code].update(extra)
            if last:
                self.offline_summary = self.offline.summary()
        if self.programmable_series is not None:
            for code in self.codes:
                per[code].update(
                    self.programmable_series.per_operator(
                        code, ops[code]["wallet_balances"], tally.value[code]
                    )
                )
            if last:
                self.programmable_summary = self.programmable_series.summary(self.step_seconds)
        metrics = list(next(iter(per.values())).keys())
        household_cash = sum(int(p.cash.sum()) for p in self.populations.values())
        row["household_cash"] = household_cash
        for m in metrics:
            row[m] = sum(per[c][m] for c in self.codes)
        row["wallets_adopted"] = sum(len(p.adopted) for p in self.populations.values())
        if self.programmable_series is not None:
            row["velocity"] = self.programmable_series.velocity(
                row["time_s"], int(row["payments_value"]), int(row["money_held"])
            )
        row["payments_failed"] = sum(tally.failed.values())
        for reason in sorted(set(self.failed_totals) | set(tally.failed_by_reason)):
            row[f"failed.{reason}"] = tally.failed_by_reason[reason]
        for code in self.codes:
            for m in metrics:
                row[f"{m}.{code}"] = per[code][m]
        self.totals.update({"ok": sum(tally.ok.values()), "failed": sum(tally.failed.values())})
        self.failed_totals.update(tally.failed_by_reason)
        self.series.append(row)
        self.previous = figures

    def _record_checks(self, checks: list[dict[str, Any]], step: int) -> None:
        self.checks_run += len(checks)
        self.checks_failed += [{**c, "step": step} for c in checks if not c["ok"]]

    def close(self) -> None:
        self.net.close()
