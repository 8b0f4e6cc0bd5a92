"""What a scenario run measures of offline use: per step and operator, what the engine saw
happen on the devices (payments made offline, double-spend attempts, syncs) and what the
operators' databases say (value in purses, double spends detected and how long after the first
transfer involved, losses carried). Detection figures come only from the operators' own
adjudication records (`offline_double_spends`), never from the engine's bookkeeping.

Series columns (totals and `<metric>.<OPCODE>`; the payer's operator for payments):
    offline_payments, offline_value       payments the payee's device accepted offline
    double_spend_attempts                 accepted ones whose (payer device, counter) another
                                          copy or an earlier state of the device had signed
    offline_syncs                         device syncs taken by the operator
    double_spends_detected                detections recorded by the payer's operator
    detection_delay_s                     their time to detection, summed (seconds)
    purse_balances                        value in offline purses (the operator's ledger)
    fraud_losses                          losses the operator carried so far (cumulative)
    devices, devices_revoked              registered and revoked so far
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from simulator.network import SimNetwork

# The series names, flows and stocks, are declared with the others in simulator/outputs.py.


class OfflineTally:
    """What the engine saw on the devices: per step (reset by `take`) and for the run."""

    def __init__(self, codes: Sequence[str]) -> None:
        self.codes = list(codes)
        self.payments: Counter[str] = Counter()
        self.value: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.syncs: Counter[str] = Counter()
        self.fallbacks: Counter[str] = Counter()
        self.rollbacks: Counter[str] = Counter()
        self.registered: Counter[str] = Counter()  # cumulative
        self.compromised: Counter[str] = Counter()  # cumulative
        self.refusals: Counter[str] = Counter()  # cumulative, by reason
        self.run: Counter[str] = Counter()  # cumulative step figures

    def paid(self, code: str, amount: int) -> None:
        self.payments[code] += 1
        self.value[code] += amount

    def refusal(self, code: str, reason: str) -> None:
        self.refusals[reason] += 1

    def take(self, code: str) -> dict[str, int]:
        """The step's figures for operator `code` (the step counters are reset)."""
        step = {
            "offline_payments": self.payments.pop(code, 0),
            "offline_value": self.value.pop(code, 0),
            "double_spend_attempts": self.attempts.pop(code, 0),
            "offline_syncs": self.syncs.pop(code, 0),
            "devices": self.registered[code],
        }
        self.run.update(
            {
                "fallbacks": self.fallbacks.pop(code, 0),
                "rollbacks": self.rollbacks.pop(code, 0),
                **{k: v for k, v in step.items() if k != "devices"},
            }
        )
        return step


HAS_TABLES = text("SELECT to_regclass('offline_double_spends') IS NOT NULL")
DELAYS = text("SELECT extract(epoch FROM detected_at - first_at) FROM offline_double_spends")


def _detections(session: Session) -> dict[str, int]:
    if not session.execute(HAS_TABLES).scalar():
        return {"detected": 0, "delay_s": 0, "revoked": 0, "loss": 0, "recovered": 0}
    row = session.execute(
        text(
            "SELECT count(*), coalesce(sum(extract(epoch FROM detected_at - first_at)), 0), "
            "coalesce(sum(loss), 0), coalesce(sum(recovered), 0), "
            "(SELECT count(*) FROM offline_devices WHERE status = 'revoked') "
            "FROM offline_double_spends"
        )
    ).one()
    return {
        "detected": int(row[0]),
        "delay_s": int(round(float(row[1]))),
        "loss": int(row[2]),
        "recovered": int(row[3]),
        "revoked": int(row[4]),
    }


def detections(net: SimNetwork) -> dict[str, dict[str, int]]:
    """Per operator, cumulative: detections, their summed time to detection (s), loss and
    recovered (minor units), devices revoked."""
    out = {}
    for code in net.codes:
        with net.state(code).factory() as session:
            out[code] = _detections(session)
    return out


def delays(net: SimNetwork) -> list[float]:
    """Every detection's time to detection (seconds), all operators, sorted."""
    values: list[float] = []
    for code in net.codes:
        with net.state(code).factory() as session:
            if session.execute(HAS_TABLES).scalar():
                values += [float(v) for v in session.execute(DELAYS).scalars()]
    return sorted(values)


def summary(net: SimNetwork, tally: OfflineTally, spec: Any) -> dict[str, Any]:
    """The run's offline figures for summary.json."""
    found = detections(net)
    times = delays(net)

    def hours(value: float) -> float:
        return round(value / 3600, 2)

    return {
        "devices": sum(tally.registered.values()),
        "compromised_devices": sum(tally.compromised.values()),
        "attack": spec.attack,
        "payments": tally.run["offline_payments"],
        "value": tally.run["offline_value"],
        "double_spend_attempts": tally.run["double_spend_attempts"],
        "double_spends_detected": sum(f["detected"] for f in found.values()),
        "devices_revoked": sum(f["revoked"] for f in found.values()),
        "time_to_detection_hours": {
            "mean": hours(sum(times) / len(times)) if times else None,
            "median": hours(times[len(times) // 2]) if times else None,
            "max": hours(times[-1]) if times else None,
        },
        "losses_by_operator": {code: f["loss"] for code, f in found.items()},
        "recovered_by_operator": {code: f["recovered"] for code, f in found.items()},
        "syncs": tally.run["offline_syncs"],
        "paid_online_instead": tally.run["fallbacks"],
        "rollbacks": tally.run["rollbacks"],
        "refusals": dict(sorted(tally.refusals.items())),
    }


__all__ = ["OfflineTally", "delays", "detections", "summary"]
