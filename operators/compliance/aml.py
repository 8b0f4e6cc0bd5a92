"""Anti-money-laundering monitoring at the operator.

Rules (thresholds in the policy file's [aml] section) are evaluated in the transaction of the
payment, load or unload that might trigger them:

    large_value        a payment of at least `large_value`
    structuring        `structuring_count` payments "just under" a limit or the large-value
                       threshold (within [ratio * limit, limit)) inside the window
    velocity           `velocity_count` outgoing payments inside the window
    fan_out / fan_in   payments to / from `fan_count` distinct counterparties inside the window
    rapid_load_unload  unloading (to the deposit or in cash) `load_unload_ratio` of what was
                       loaded (from the deposit or in cash) inside the window

An alert is stored here (with the wallet id, which carries no personal data) and reported to
the central bank's analysis centre through the outbox: pseudonymous by construction. A rule that
already fired for a wallet inside its window does not fire again until the window has passed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from cbdc.clock import iso
from cbdc.policy import AmlRules, WalletClass
from cbdc.sqlarrays import int_array, text_array
from operators import repository as repo
from operators.compliance import repository as aml_repo
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
        now=at,
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
    aggregate query and once-per-window rule as a batch's payees (`payment_checks`), for all of
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


@dataclass(slots=True)
class PaymentChecks:
    """The payment rules of one batch: the large payments (alerts whatever the history), and
    the one aggregate query for the window rules (`query`, `params`), which the batch path runs
    in the round trip of its writes (`operators.payments.payment_sql.write_batch`)."""

    large: list[tuple[str, int, dict[str, Any]]]
    amounts: dict[tuple[str, str], int]  # (wallet, rule) -> the amount that would trigger it
    limits: dict[str, int]  # structuring: payer -> the limit it paid just under
    windows: dict[str, int]
    params: dict[str, Any]
    query: str = aml_repo.PAYMENT_CANDIDATES_SQL


def payment_checks(
    ctx: OperatorContext, payments: Sequence[tuple[Any, str, int, Any]], *, now: datetime
) -> PaymentChecks:
    """What the batch path checks for (payer wallet, payee id, amount, local payee wallet or
    None) each, before the database is asked."""
    rules: AmlRules = ctx.policy.aml
    large: list[tuple[str, int, dict[str, Any]]] = []
    structuring: dict[str, tuple[int, int, int]] = {}  # payer -> (low, high, amount)
    payers: dict[str, int] = {}
    payees: dict[str, int] = {}
    singles: dict[int, int | None] = {}
    ratio = rules.structuring_ratio
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
        if payer.wallet_class not in singles:
            limits = ctx.policy.limits(WalletClass(payer.wallet_class))
            singles[payer.wallet_class] = limits.single_payment
        near = [
            lim
            for lim in (singles[payer.wallet_class], rules.large_value)
            if lim is not None and _just_under(amount, lim, ratio)
        ]
        if near:
            structuring[payer.id] = (int(min(near) * ratio), max(near), amount)
    amounts = {(w, "velocity"): a for w, a in payers.items()}
    amounts.update({(w, "fan_out"): a for w, a in payers.items()})
    amounts.update({(w, "structuring"): s[2] for w, s in structuring.items()})
    amounts.update({(w, "fan_in"): a for w, a in payees.items()})
    s_ids = list(structuring)
    return PaymentChecks(
        large=large,
        amounts=amounts,
        limits={w: s[1] for w, s in structuring.items()},
        windows={
            "velocity": rules.velocity_window_minutes,
            "fan_out": rules.fan_window_minutes,
            "fan_in": rules.fan_window_minutes,
            "structuring": rules.structuring_window_minutes,
        },
        params={
            "payers": text_array(list(payers)),
            "payees": text_array(list(payees)),
            "vs": now - timedelta(minutes=rules.velocity_window_minutes),
            "fs": now - timedelta(minutes=rules.fan_window_minutes),
            "ss": now - timedelta(minutes=rules.structuring_window_minutes),
            "vc": rules.velocity_count,
            "fc": rules.fan_count,
            "sc": rules.structuring_count,
            "s_w": text_array(s_ids),
            "s_lo": int_array(structuring[w][0] for w in s_ids),
            "s_hi": int_array(structuring[w][1] for w in s_ids),
        },
    )


def raise_payment_alerts(
    session: Session,
    checks: PaymentChecks,
    rows: Sequence[tuple[str, str, int]],
    *,
    now: datetime,
) -> int:
    """Store the alerts of a batch: its large payments, and the (wallet, rule, count) rows its
    query found. Returns the number of alerts raised."""
    raised = [(w, "large_value", a, d) for w, a, d in checks.large]
    for wallet_id, rule, count in rows:
        key = "counterparties" if rule in ("fan_out", "fan_in") else "count"
        details: dict[str, Any] = {key: int(count)}
        if rule == "structuring":
            details["limit"] = checks.limits[wallet_id]
        details["window_minutes"] = checks.windows[rule]
        raised.append((wallet_id, rule, checks.amounts[(wallet_id, rule)], details))
    if len(raised) == 1:
        wallet_id, rule, amount, details = raised[0]
        _store_alert(
            session, wallet_id=wallet_id, rule=rule, amount=amount, details=details, at=now
        )
    elif raised:  # several: stored and queued in one statement
        at = iso(now)
        alerts = []
        for wallet_id, rule, amount, details in raised:
            alert_id = str(uuid.uuid4())
            report = {
                "report_id": alert_id,
                "wallet": wallet_id,
                "rule": rule,
                "amount": amount,
                "details": details,
                "occurred_at": at,
            }
            alerts.append(
                {
                    "id": alert_id,
                    "wallet_id": wallet_id,
                    "rule": rule,
                    "amount": amount,
                    "details": details,
                    "at": now.isoformat(),
                    "report": report,
                }
            )
        aml_repo.add_alerts_and_reports(session, alerts)
    return len(raised)


def on_offline_double_spend(
    session: Session,
    ctx: OperatorContext,
    *,
    wallet_id: str,
    amount: int,
    details: dict[str, Any],
    at: datetime | None = None,
) -> None:
    """An offline device of `wallet_id` spent the same value twice (a cloned or rolled-back
    secure element, `operators.offline`): always alerted (rule `offline_double_spend`, reported
    pseudonymously like every alert); `amount` is the value of the detecting transfer; `at`:
    the detecting operation's instant."""
    _store_alert(
        session,
        wallet_id=wallet_id,
        rule="offline_double_spend",
        amount=amount,
        details=details,
        at=ctx.now() if at is None else at,
    )
