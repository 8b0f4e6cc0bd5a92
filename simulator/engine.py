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
     settlement at the central bank per payment), net by a clearing cycle;
  5. merchants unload to their deposits; vault water marks trigger issuance or redemption;
  6. figures are read from the databases and the cross-tier invariants checked.

Every money movement is the services' own code against PostgreSQL, so every limit, rule and
database invariant applies. The same file and seed give the same series (wall-clock timings are
kept apart in timing.csv).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

from cbdc.errors import DomainError
from cbdc.sqlarrays import text_array
from operators.payments import batch, bulk
from operators.wallets import states
from simulator import settle
from simulator.metrics import observe
from simulator.network import SimNetwork, apply_limits, side_by_side
from simulator.population import OperatorPopulation, adopt, seed
from simulator.scenario import (
    DepositRun,
    FixedAmount,
    LognormalAmount,
    Outage,
    Scenario,
    SetLimits,
    SettlementModeSwitch,
    UniformAmount,
)
from simulator.scenario_loading import load_scenario

LIMIT_CODES = frozenset(
    {
        "single_payment_limit_exceeded",
        "daily_limit_exceeded",
        "annual_limit_exceeded",
        "balance_cap_exceeded",
        "payee_balance_cap_exceeded",
    }
)
Progress = Callable[[int, int, dict[str, Any]], None]


class StepTally:
    """What happened during one step, per operator."""

    def __init__(self, codes: list[str]) -> None:
        self.ok: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.failed_by_reason: Counter[str] = Counter()
        self.limit_hits: Counter[str] = Counter()
        self.gross: Counter[str] = Counter()
        self.shortfall: Counter[str] = Counter()
        self.codes = codes

    def payment(self, code: str, outcome: batch.Outcome, amount: int) -> None:
        if outcome.ok:
            self.ok[code] += 1
            if outcome.cross and not outcome.replayed:
                self.gross[code] += amount
            return
        reason = outcome.code or "error"
        self.failed[code] += 1
        self.failed_by_reason[reason] += 1
        if reason in LIMIT_CODES:
            self.limit_hits[code] += 1


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
        self.runs: list[tuple[str, float, int, int]] = []  # (operator, share, start, end)
        self.outages: dict[str, int] = {}  # operator -> end of outage (simulated seconds)
        self.events = list(scenario.events)
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
            self._open_and_load(start + self.step_seconds, tally)
            self.net.analyze()  # autovacuum is off on the run's databases
            setup = time.perf_counter() - started
            self.settling = 0.0
            payments = self._payments(step, tally)
            self.net.clock.seconds = start + self.step_seconds
            self._merchants_unload()
            self._settle(final=True)
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
                del self.outages[code]
                settle.make_jobs_due(self.net)
        while self.events and self.events[0].at < end:
            event = self.events.pop(0)
            if isinstance(event, DepositRun):
                self.runs.append((event.operator, event.share, event.at, event.at + event.over))
                pop = self.populations[event.operator]
                adopt(self.net, pop, pop.households)  # a run: everyone gets a wallet
                pop.run_deposit = self._deposits(pop)
            elif isinstance(event, SetLimits):
                for code in [event.operator] if event.operator else self.codes:
                    policy = apply_limits(
                        self.net.policy(code), {event.wallet_class: event.given()}
                    )
                    self.net.set_policy(code, policy)
            elif isinstance(event, SettlementModeSwitch):
                settle.settle(self.net, final=True)
                for code in self.codes:
                    self.net.state(code).ctx.settlement_mode = event.mode
            elif isinstance(event, Outage):
                self.net.down.add(event.operator)
                self.outages[event.operator] = event.at + event.length

    def _open_and_load(self, at: int, tally: StepTally) -> None:
        """Households open wallets up to the adoption curve, then move cash and deposits in
        along the substitution curve: each operator in its own thread, one after the other
        within it, so that one operator's key generation (Python) overlaps another's loads
        (its database). Each touches only its own population, database and tally entries."""
        share = self.scenario.adoption.share_at(at)

        def work(pop: OperatorPopulation) -> None:
            adopt(self.net, pop, int(share * pop.households + 0.5))
            if pop.adopted:
                self._substitute(pop, tally)

        side_by_side(work, [pop for code, pop in self.populations.items() if self.net.up(code)])

    # ------------------------------------------------------------ exchange

    def _deposits(self, pop: OperatorPopulation) -> dict[str, int]:
        state = self.net.state(pop.code)
        with state.factory() as session:
            rows = session.execute(
                text(
                    "SELECT w.id, a.balance FROM wallets w JOIN customers c "
                    "ON c.id = w.customer_id JOIN accounts a ON a.id = c.deposit_account_id "
                    "WHERE w.id = ANY(CAST(:ids AS text[]))"
                ),
                {"ids": text_array(pop.adopted_wallets)},
            ).all()
        return {r.id: int(r.balance) for r in rows}

    def _room(self, pop: OperatorPopulation) -> dict[str, int | None]:
        """How much more each adopted wallet may hold under its cap."""
        state = self.net.state(pop.code)
        with state.factory() as session:
            wallets = states.load_wallet_states(session, pop.adopted_wallets)
            rows = session.execute(
                text(
                    "SELECT w.id, a.balance FROM wallets w JOIN accounts a "
                    "ON a.id = w.account_id WHERE w.id = ANY(CAST(:ids AS text[]))"
                ),
                {"ids": text_array(pop.adopted_wallets)},
            ).all()
        return {r.id: bulk.cap_room(state.ctx, wallets[r.id], int(r.balance)) for r in rows}

    def _substitute(self, pop: OperatorPopulation, tally: StepTally) -> None:
        code = pop.code
        sub = self.scenario.substitution
        now = self.net.clock.seconds
        run_share = 0.0
        for operator, share, start, end in self.runs:
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
            sub.speed
            * np.maximum(0, sub.cash_target * pop.cash_start[held] - pop.moved_cash[held])
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
        room = self._room(pop)
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
            for outcome in self._exchange(code, kind, moves):
                if outcome.ok:
                    continue
                h = by_wallet[outcome.wallet_id]
                if kind == "cash_load":  # the banknotes stay in the pocket
                    pop.cash[h] += outcome.amount
                    pop.moved_cash[h] -= outcome.amount
                else:
                    pop.moved_deposit[h] -= outcome.amount
                if (
                    outcome.error is not None
                    and outcome.error.code == "vault_float_insufficient"
                ):
                    tally.shortfall[code] += outcome.amount
                elif outcome.error is not None and outcome.error.code in LIMIT_CODES:
                    tally.limit_hits[code] += 1

    def _exchange(
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

    def _merchants_unload(self) -> None:
        share = self.scenario.payments.merchant_unload
        if share <= 0:
            return
        for code, pop in self.populations.items():
            if not self.net.up(code) or not pop.merchant_wallets:
                continue
            state = self.net.state(code)
            with state.factory() as session:
                rows = session.execute(
                    text(
                        "SELECT w.id, a.balance FROM wallets w JOIN accounts a "
                        "ON a.id = w.account_id WHERE w.id = ANY(:ids) AND a.balance > 0 "
                        "ORDER BY w.id"
                    ),
                    {"ids": pop.merchant_wallets},
                ).all()
            moves = [
                (r.id, int(int(r.balance) * share)) for r in rows if int(r.balance) * share >= 1
            ]
            self._exchange(code, "unload", moves)

    # ------------------------------------------------------------ payments

    def _amounts(self, n: int) -> np.ndarray:
        spec = self.scenario.payments.amount
        if isinstance(spec, LognormalAmount):
            values = spec.median * np.exp(spec.sigma * self.rng.standard_normal(n))
            if spec.max is not None:
                values = np.minimum(values, spec.max)
        elif isinstance(spec, UniformAmount):
            values = self.rng.uniform(spec.min, spec.max, n)
        else:
            assert isinstance(spec, FixedAmount)
            values = np.full(n, spec.value, dtype=np.float64)
        return np.maximum(1, np.rint(values)).astype(np.int64)

    def _payments(self, step: int, tally: StepTally) -> int:
        """Draw the step's payments and run them, slice by slice; returns how many ran."""
        p = self.scenario.payments
        start = step * self.step_seconds
        drawn: list[tuple[float, str, str, str, int]] = []  # (time, operator, payer, payee, amount)
        adopted = {c: pop.adopted_wallets for c, pop in self.populations.items()}
        merchants = {c: pop.merchant_wallets for c, pop in self.populations.items()}
        for code in self.codes:
            payers = adopted[code]
            if not payers:
                continue
            n = int(self.rng.poisson(p.rate * len(payers)))
            if n == 0:
                continue
            payer_idx = self.rng.integers(0, len(payers), n)
            to_merchant = self.rng.random(n) < p.to_merchants
            cross = self.rng.random(n) < p.cross_operator
            others = [c for c in self.codes if c != code]
            target_idx = self.rng.integers(0, max(1, len(others)), n)
            pick = self.rng.random(n)
            amounts = self._amounts(n)
            times = start + self.rng.random(n) * self.step_seconds
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
            self.net.clock.seconds = float(b_start)
            by_operator: dict[str, list[tuple[float, str, str, int]]] = {}
            for t, code, payer, payee, amount in chunk:
                by_operator.setdefault(code, []).append((t, payer, payee, amount))
            work: dict[str, tuple[int, list[tuple[float, str, str, int]]]] = {}
            for code in self.codes:
                items = by_operator.get(code, [])
                if not items:
                    continue
                if not self.net.up(code):
                    tally.failed[code] += len(items)
                    tally.failed_by_reason["operator_unavailable"] += len(items)
                    continue
                work[code] = (self.nonce, items)  # nonces sim-<n+1>.. in operator order
                self.nonce += len(items)
            # Operators have their own databases and customers: their batches of a slice run
            # side by side (one thread each), so one operator's Python overlaps another's
            # database work. Outcomes are tallied afterwards in operator order.
            results = side_by_side(lambda w: self._pay_all(*w), list(work.items()))
            outcomes = dict(zip(work, results, strict=True))
            for code, (_, items) in work.items():
                for item, outcome in zip(items, outcomes[code], strict=True):
                    tally.payment(code, outcome, item[3])
                done += len(items)
            self.net.clock.seconds = float(b_end)
            self._settle(final=False)
        return done

    def _settle(self, *, final: bool) -> None:
        started = time.perf_counter()
        settle.settle(self.net, final=final)
        self.settling += time.perf_counter() - started

    def _pay_all(
        self, code: str, work: tuple[int, list[tuple[float, str, str, int]]]
    ) -> list[batch.Outcome]:
        """One operator's payments of a slice ((time, payer, payee, amount) each, numbered
        from `work[0] + 1`), in batches, each batch at its last payment's time. The
        instructions are built here, batch by batch, in the operator's thread."""
        first, items = work
        state = self.net.state(code)
        epoch = self.net.clock.epoch
        size = self.scenario.payments.batch_size
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
        metrics = list(next(iter(per.values())).keys())
        household_cash = sum(int(p.cash.sum()) for p in self.populations.values())
        row["household_cash"] = household_cash
        for m in metrics:
            row[m] = sum(per[c][m] for c in self.codes)
        row["wallets_adopted"] = sum(len(p.adopted) for p in self.populations.values())
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


def _seconds(t: float) -> timedelta:
    return timedelta(seconds=t)


def normalise_series(series: list[dict[str, int | float]]) -> list[dict[str, int | float]]:
    """Every row with every column (failure reasons first seen late are 0 before)."""
    columns: list[str] = []
    for row in series:
        for key in row:
            if key not in columns:
                columns.append(key)
    head = [c for c in columns if not c.startswith("failed.")]
    failed = sorted(c for c in columns if c.startswith("failed."))
    ordered = (
        head[: head.index("payments_failed") + 1]
        + failed
        + head[head.index("payments_failed") + 1 :]
    )
    return [{c: row.get(c, 0) for c in ordered} for row in series]


def run_scenario(
    path: Path,
    *,
    runs_root: Path,
    database_url: str | None = None,
    progress: Progress | None = None,
    full_checks: bool = False,
    baseline: bool = False,
) -> Path:
    """Run the scenario file at `path`; write its run folder under `runs_root`; return it.
    `baseline`: then measure raw PostgreSQL doing the same writes (simulator/baseline.py) on
    the same server, and record the ratio."""
    from simulator.outputs import new_run_dir, write_run

    scenario = load_scenario(path)
    started_at = datetime.now(UTC)
    server_url, stop = _database(database_url)
    try:
        engine = Engine(scenario, server_url, full_checks=full_checks)
        # The engine runs one thread per operator; each database round trip drops the GIL.
        # A shorter switch interval hands it back sooner (measured: about 13% faster).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)
        try:
            started = time.perf_counter()
            engine.run(progress)
            wall = time.perf_counter() - started
        finally:
            sys.setswitchinterval(switch_interval)
            engine.close()
        payments = engine.totals["ok"] + engine.totals["failed"]
        raw = None
        if baseline:
            from simulator.baseline import raw_payment_rate

            raw = raw_payment_rate(
                server_url,
                wallets=max(2, sum(len(p.adopted) for p in engine.populations.values())),
                payments=min(max(payments, 1), 200_000),
                batch_size=scenario.payments.batch_size,
            )
    finally:
        stop()
    summary = {
        "name": scenario.meta.name,
        "question": scenario.meta.question,
        "description": scenario.meta.description,
        "seed": scenario.meta.seed,
        "scenario_digest": scenario.digest,
        "operators": engine.codes,
        "currency": scenario.meta.currency,
        "decimals": 2,
        "steps": scenario.steps,
        "step_seconds": scenario.meta.step,
        "settlement_mode": scenario.settlement.mode,
        "payments_total": payments,
        "payments_ok": engine.totals["ok"],
        "payments_failed": engine.totals["failed"],
        "failed_by_reason": dict(sorted(engine.failed_totals.items())),
        "wall_seconds": round(wall, 3),
        "payments_per_second": round(payments / wall, 1) if wall else 0.0,
        "invariants_checked": engine.checks_run,
        "invariants_ok": not engine.checks_failed,
        "invariant_failures": engine.checks_failed[:20],
        "full_checks_every_step": full_checks,
        "started_at": started_at.isoformat(),
        "median_step_payments_per_second": _median(t["payments_per_second"] for t in engine.timing),
        # wall seconds by phase, summed over the steps (timing.csv has them per step)
        "phase_seconds": {
            phase: round(sum(t[f"{phase}_seconds"] for t in engine.timing), 3)
            for phase in ("setup", "payments", "settlement")
        },
    }
    if raw is not None:
        summary["baseline"] = raw
        summary["ratio_to_baseline"] = round(payments / wall / raw["payments_per_second"], 3)
    run_dir = new_run_dir(runs_root, scenario.meta.name, started_at)
    write_run(
        run_dir,
        series=normalise_series(engine.series),
        timing=engine.timing,
        summary=summary,
        scenario_text=scenario.source_text,
    )
    return run_dir


def _median(values: Any) -> float:
    import statistics

    items = list(values)
    return round(statistics.median(items), 1) if items else 0.0


def _database(database_url: str | None) -> tuple[str, Callable[[], None]]:
    """The PostgreSQL server to run on: the given URL, CBDC_DATABASE_URL, or an embedded
    server the engine starts (and stops) in `.cbdc/scenarios`."""
    from cbdc.pg import EmbeddedPostgres
    from cbdc.settings import Settings

    url = database_url or Settings().database_url
    if url:
        return url, lambda: None
    server = EmbeddedPostgres(Path(".cbdc/scenarios").resolve())
    url = server.start()
    return url, server.stop

