"""Anti-money-laundering monitoring at the operator.

Rules (thresholds in the policy file's [aml] section) are evaluated in the transaction of the
payment, load or unload that might trigger them:

    large_value        a payment of at least `large_value`
    structuring        `structuring_count` payments "just under" a limit or the large-value
                       threshold (within [ratio * limit, limit)) inside the window
    velocity           `velocity_count` outgoing payments inside the window
    fan_out / fan_in   payments to / from `fan_count` distinct counterparties inside the window
    rapid_load_unload  unloading `load_unload_ratio` of what was loaded inside the window

An alert is stored here (with the wallet id, which carries no personal data) and reported to
the central bank's analysis centre through the outbox: pseudonymous by construction. A rule that
already fired for a wallet inside its window does not fire again until the window has passed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from cbdc.clock import iso
from cbdc.policy import AmlRules, WalletClass
from operators import aml_repository as aml_repo
from operators import repository as repo
from operators.context import OperatorContext
from operators.models import Wallet


def _raise_alert(
    session: Session,
    ctx: OperatorContext,
    *,
    wallet_id: str,
    rule: str,
    amount: int,
    details: dict[str, Any],
    window_minutes: int | None,
) -> None:
    now = ctx.now()
    if window_minutes is not None and aml_repo.recent_alert_exists(
        session, wallet_id=wallet_id, rule=rule, since=now - timedelta(minutes=window_minutes)
    ):
        return
    _store_alert(session, wallet_id=wallet_id, rule=rule, amount=amount, details=details, at=now)


def _store_alert(
    session: Session,
    *,
    wallet_id: str,
    rule: str,
    amount: int,
    details: dict[str, Any],
    at: datetime,
) -> None:
    """Keep the alert and queue its pseudonymous report to the analysis centre."""
    alert_id = uuid.uuid4()
    aml_repo.add_alert(
        session,
        alert_id=alert_id,
        wallet_id=wallet_id,
        rule=rule,
        amount=amount,
        details=details,
        at=at,
    )
    repo.enqueue(
        session,
        kind="aml_report",
        reference=f"aml:{alert_id}",
        payload={
            "report_id": str(alert_id),
            "wallet": wallet_id,
            "rule": rule,
            "amount": amount,
            "details": details,
            "occurred_at": iso(at),
        },
    )


def _just_under(amount: int, limit: int | None, ratio: float) -> bool:
    return limit is not None and limit * ratio <= amount < limit


def on_receipts(session: Session, ctx: OperatorContext, credited: Mapping[str, int]) -> None:
    """Fan-in for wallets just credited from another operator ({payee id: amount}): the same
    aggregate query and once-per-window rule as a batch's payees (`on_payments`), for all of
    them at once."""
    rules = ctx.policy.aml
    now = ctx.now()
    candidates = _fan_in(session, rules, credited, now)
    fresh = _not_alerted_within(session, candidates, {"fan_in": rules.fan_window_minutes}, now)
    for (wallet_id, rule), (amount, details) in sorted(fresh.items()):
        _store_alert(
            session, wallet_id=wallet_id, rule=rule, amount=amount, details=details, at=now
        )


Candidates = dict[tuple[str, str], tuple[int, dict[str, Any]]]  # (wallet, rule) -> amount, details


def _fan_in(
    session: Session, rules: AmlRules, amounts: Mapping[str, int], now: datetime
) -> Candidates:
    """Fan-in candidates among the payees in `amounts` ({wallet: amount that triggered it})."""
    if not amounts:
        return {}
    hits = aml_repo.payee_fan_in(
        session,
        wallet_ids=sorted(amounts),
        since=now - timedelta(minutes=rules.fan_window_minutes),
        at_least=rules.fan_count,
    )
    return {
        (wallet_id, "fan_in"): (
            amounts[wallet_id],
            {"counterparties": count, "window_minutes": rules.fan_window_minutes},
        )
        for wallet_id, count in hits.items()
    }


def _not_alerted_within(
    session: Session, candidates: Candidates, windows: Mapping[str, int], now: datetime
) -> Candidates:
    """The candidates whose rule has not fired for their wallet inside the rule's window."""
    if not candidates:
        return candidates
    last = aml_repo.last_alerts(session, wallet_ids=sorted({w for w, _ in candidates}))
    return {
        key: value
        for key, value in candidates.items()
        if (previous := last.get(key)) is None
        or previous < now - timedelta(minutes=windows[key[1]])
    }


def on_unload(session: Session, ctx: OperatorContext, *, wallet: Wallet, amount: int) -> None:
    """Loaded from a deposit or in cash, and soon unloaded again: layering through the wallet."""
    rules = ctx.policy.aml
    wallet_id = wallet.id
    since = ctx.now() - timedelta(minutes=rules.load_unload_window_minutes)
    loaded, unloaded = aml_repo.exchange_totals(session, account_id=wallet.account_id, since=since)
    if loaded >= rules.load_unload_min and unloaded >= loaded * rules.load_unload_ratio:
        _raise_alert(
            session,
            ctx,
            wallet_id=wallet_id,
            rule="rapid_load_unload",
            amount=amount,
            details={
                "loaded": loaded,
                "unloaded": unloaded,
                "window_minutes": rules.load_unload_window_minutes,
            },
            window_minutes=rules.load_unload_window_minutes,
        )


# ------------------------------------------------------------------ the batch path


def on_payments(
    session: Session,
    ctx: OperatorContext,
    payments: Sequence[tuple[Any, str, int, Any]],
    *,
    now: datetime,
) -> int:
    """The payment rules (and the payees' fan-in) for a batch already written to `orders`:
    (payer wallet, payee id, amount, local payee wallet or None) each. Window rules are judged
    on the state at the end of the batch with one aggregate query per rule family, so a rule
    fires at most once per wallet per batch (and, as for single payments, once per window).
    Returns the number of alerts raised."""
    rules: AmlRules = ctx.policy.aml
    candidates: Candidates = {}
    large: list[tuple[str, int, dict[str, Any]]] = []
    structuring: dict[str, tuple[int, int, int]] = {}  # payer -> (low, high, amount)
    payers: dict[str, int] = {}
    payees: dict[str, int] = {}
    for payer, payee_id, amount, payee in payments:
        payers[payer.id] = amount
        if payee is not None:
            payees[payee.id] = amount
        if amount >= rules.large_value:
            large.append(
                (
                    payer.id,
                    amount,
                    {"payee_operator": payee_id[:4], "threshold": rules.large_value},
                )
            )
        single = ctx.policy.limits(WalletClass(payer.wallet_class)).single_payment
        near = [
            lim
            for lim in (single, rules.large_value)
            if lim is not None and _just_under(amount, lim, rules.structuring_ratio)
        ]
        if near:
            structuring[payer.id] = (
                int(min(near) * rules.structuring_ratio),
                max(near),
                amount,
            )
    v_since = now - timedelta(minutes=rules.velocity_window_minutes)
    f_since = now - timedelta(minutes=rules.fan_window_minutes)
    for row in aml_repo.payer_window_stats(
        session,
        wallet_ids=list(payers),
        velocity_since=v_since,
        fan_since=f_since,
        velocity_count=rules.velocity_count,
        fan_count=rules.fan_count,
    ):
        if row.velocity >= rules.velocity_count:
            candidates[(row.wallet_id, "velocity")] = (
                payers[row.wallet_id],
                {"count": int(row.velocity), "window_minutes": rules.velocity_window_minutes},
            )
        if row.payees >= rules.fan_count:
            candidates[(row.wallet_id, "fan_out")] = (
                payers[row.wallet_id],
                {"counterparties": int(row.payees), "window_minutes": rules.fan_window_minutes},
            )
    if structuring:
        s_since = now - timedelta(minutes=rules.structuring_window_minutes)
        counts = aml_repo.near_limit_counts(session, bounds=structuring, since=s_since)
        for wallet_id, count in counts.items():
            if count >= rules.structuring_count:
                low, high, amount = structuring[wallet_id]
                candidates[(wallet_id, "structuring")] = (
                    amount,
                    {
                        "count": count,
                        "limit": high,
                        "window_minutes": rules.structuring_window_minutes,
                    },
                )
    candidates.update(_fan_in(session, rules, payees, now))
    windows = {
        "velocity": rules.velocity_window_minutes,
        "fan_out": rules.fan_window_minutes,
        "fan_in": rules.fan_window_minutes,
        "structuring": rules.structuring_window_minutes,
    }
    candidates = _not_alerted_within(session, candidates, windows, now)
    raised = [(w, "large_value", a, d) for w, a, d in large]
    raised += [(w, rule, a, d) for (w, rule), (a, d) in candidates.items()]
    for wallet_id, rule, amount, details in raised:
        _store_alert(
            session, wallet_id=wallet_id, rule=rule, amount=amount, details=details, at=now
        )
    return len(raised)
