"""What happened during a step of a scenario run: payments and exchanges per operator."""

from __future__ import annotations

from collections import Counter

from operators.payments import batch

LIMIT_CODES = frozenset(
    {
        "single_payment_limit_exceeded",
        "daily_limit_exceeded",
        "annual_limit_exceeded",
        "balance_cap_exceeded",
        "payee_balance_cap_exceeded",
    }
)


class StepTally:
    """What happened during one step, per operator."""

    def __init__(self, codes: list[str]) -> None:
        self.ok: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.failed_by_reason: Counter[str] = Counter()
        self.limit_hits: Counter[str] = Counter()
        self.gross: Counter[str] = Counter()
        self.value: Counter[str] = Counter()  # value of the payments made
        self.shortfall: Counter[str] = Counter()
        self.codes = codes

    def payment(self, code: str, outcome: batch.Outcome, amount: int) -> None:
        if outcome.ok:
            self.ok[code] += 1
            self.value[code] += amount
            if outcome.cross and not outcome.replayed:
                self.gross[code] += amount
            return
        reason = outcome.code or "error"
        self.failed[code] += 1
        self.failed_by_reason[reason] += 1
        if reason in LIMIT_CODES:
            self.limit_hits[code] += 1
