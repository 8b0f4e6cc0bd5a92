"""Series and summary of programmable money in a run (`simulator/programmable.py`).

Per operator and step (summed over operators for the totals), with a `[stimulus]`:
    stimulus_paid        value the agency paid or granted to households in the step
    voucher_spending     value paid from vouchers to merchants in the step
    voucher_outstanding  value held in vouchers at the end of the step
    expiry_returns       unspent voucher value the expiry sweep returned to the agency
with `[escrows]`:
    escrows_opened       escrows opened in the step (count)
    escrows_released     value released to payees in the step
    escrows_refunded     value given back to payers (at the deadline) in the step
    escrow_locked        value locked in open escrows at the end of the step
with either, and network-wide:
    payments_value       value of the payments made in the step: ordinary payments, voucher
                         payments and escrows opened (the payer parts with the money then; a
                         refund at the deadline is not a payment). Not the stimulus itself
    money_held           digital currency the public holds at the end of the step: households'
                         and merchants' wallets, their vouchers and their open escrows (not the
                         agency's wallet, not the operators' vault float)
    velocity             payments_value / money_held of the step (0 when nothing is held)

Cumulative totals are read from the operators' databases (voucher_accounts, escrows), the step's
flows are their differences from the previous step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text

from operators.wallets import repository as wallet_repo
from simulator.network import SimNetwork
from simulator.programmable import ProgrammableWorld

STIMULUS_METRICS = ("stimulus_paid", "voucher_spending", "voucher_outstanding", "expiry_returns")
ESCROW_METRICS = ("escrows_opened", "escrows_released", "escrows_refunded", "escrow_locked")


def _totals(net: SimNetwork, code: str, agency: str | None) -> dict[str, int]:
    with net.state(code).factory() as session:
        granted, spent, returned = session.execute(
            text(
                "SELECT coalesce(sum(granted), 0), coalesce(sum(spent), 0), "
                "coalesce(sum(returned), 0) FROM voucher_accounts"
            )
        ).one()
        opened, released, refunded, locked = session.execute(
            text(
                "SELECT count(*), coalesce(sum(released), 0), coalesce(sum(refunded), 0), "
                "coalesce(sum(amount - released - refunded) FILTER (WHERE status = 'open'), 0) "
                "FROM escrows"
            )
        ).one()
        agency_balance = (
            wallet_repo.wallet_balances(session, [agency]).get(agency, 0) if agency else 0
        )
    return {
        "granted": int(granted),
        "spent": int(spent),
        "returned": int(returned),
        "opened": int(opened),
        "released": int(released),
        "refunded": int(refunded),
        "locked": int(locked),
        "agency": int(agency_balance),
    }


class ProgrammableSeries:
    def __init__(self, net: SimNetwork, world: ProgrammableWorld) -> None:
        self.net, self.world = net, world
        self.previous = {code: self._read(code) for code in net.codes}
        self.rows: list[dict[str, float]] = []  # (time, payments_value, money_held) per step

    def _read(self, code: str) -> dict[str, int]:
        agency = self.world.agency.get(code)
        return _totals(self.net, code, agency[0] if agency else None)

    def per_operator(self, code: str, wallet_balances: int, payments_value: int) -> dict[str, int]:
        """The operator's figures of the step (read after it)."""
        now, prev = self._read(code), self.previous[code]
        self.previous[code] = now
        out: dict[str, int] = {}
        if self.world.stimulus is not None:
            out["stimulus_paid"] = self.world.step_paid.pop(code, 0)
            out["voucher_spending"] = now["spent"] - prev["spent"]
            out["voucher_outstanding"] = now["granted"] - now["spent"] - now["returned"]
            out["expiry_returns"] = now["returned"] - prev["returned"]
        if self.world.escrows is not None:
            out["escrows_opened"] = now["opened"] - prev["opened"]
            out["escrows_released"] = now["released"] - prev["released"]
            out["escrows_refunded"] = now["refunded"] - prev["refunded"]
            out["escrow_locked"] = now["locked"]
        out["payments_value"] = payments_value
        out["money_held"] = (
            wallet_balances
            - now["agency"]
            + now["granted"]
            - now["spent"]
            - now["returned"]
            + now["locked"]
        )
        return out

    def velocity(self, time_s: float, payments_value: int, money_held: int) -> float:
        self.rows.append({"time": time_s, "value": payments_value, "held": money_held})
        return round(payments_value / money_held, 6) if money_held > 0 else 0.0

    def summary(self, step_seconds: int) -> dict[str, Any]:
        world = self.world
        out: dict[str, Any] = {}
        if world.stimulus is not None:
            s = world.stimulus
            end = world.expires_at if world.expires_at is not None else float(s.at + s.expires)
            totals = [self.previous[c] for c in self.net.codes]
            out["stimulus"] = {
                "form": s.form,
                "recipients": world.summary["stimulus_recipients"],
                "paid": world.summary["stimulus_paid"],
                "refused": {
                    k.split(".", 1)[1]: v
                    for k, v in world.summary.items()
                    if k.startswith("stimulus_refused.")
                },
                "voucher_spent": sum(t["spent"] for t in totals),
                "expiry_returns": sum(t["returned"] for t in totals),
                "paid_to_merchants_by_category": dict(sorted(world.by_category.items())),
                "voucher_spending_by_category": dict(sorted(world.voucher_by_category.items())),
                # steps wholly inside [at, expiry), and the steps after the expiry
                "velocity_during": _velocity(self.rows, step_seconds, s.at, end),
                "velocity_after": _velocity(self.rows, step_seconds, end, float("inf")),
            }
        if world.escrows is not None:
            totals = [self.previous[c] for c in self.net.codes]
            out["escrows"] = {
                "opened": sum(t["opened"] for t in totals),
                "released": sum(t["released"] for t in totals),
                "refunded": sum(t["refunded"] for t in totals),
                "released_count": world.summary["escrows_released"],
                "release_refused": {
                    k.split(".", 1)[1]: v
                    for k, v in world.summary.items()
                    if k.startswith("escrow_release_refused.")
                },
            }
        return out


def _velocity(
    rows: Sequence[dict[str, float]], step_seconds: int, start: float, end: float
) -> float | None:
    """Velocity over the steps wholly within [start, end): their payments' value over the
    mean money held at their ends (per step, like the series)."""
    inside = [r for r in rows if r["time"] - step_seconds >= start and r["time"] <= end]
    if not inside:
        return None
    held = sum(r["held"] for r in inside) / len(inside)
    value = sum(r["value"] for r in inside) / len(inside)
    return round(value / held, 6) if held > 0 else None
