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
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from cbdc.clock import iso, utcnow
from cbdc.policy import AmlRules, WalletClass
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
    now = utcnow()
    if window_minutes is not None and repo.recent_alert_exists(
        session, wallet_id=wallet_id, rule=rule, since=now - timedelta(minutes=window_minutes)
    ):
        return
    alert_id = uuid.uuid4()
    repo.add_alert(
        session, alert_id=alert_id, wallet_id=wallet_id, rule=rule, amount=amount, details=details
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
            "occurred_at": iso(now),
        },
    )


def _just_under(amount: int, limit: int | None, ratio: float) -> bool:
    return limit is not None and limit * ratio <= amount < limit


def on_payment(
    session: Session,
    ctx: OperatorContext,
    *,
    payer: Wallet,
    payee_id: str,
    amount: int,
    payee: Wallet | None,
) -> None:
    """Rules seen from the payer (and, for a payee at this operator, fan-in)."""
    rules: AmlRules = ctx.policy.aml
    now = utcnow()
    if amount >= rules.large_value:
        _raise_alert(
            session,
            ctx,
            wallet_id=payer.id,
            rule="large_value",
            amount=amount,
            details={"payee_operator": payee_id[:4], "threshold": rules.large_value},
            window_minutes=None,
        )
    single = ctx.policy.limits(WalletClass(payer.wallet_class)).single_payment
    limits = [
        lim
        for lim in (single, rules.large_value)
        if lim is not None and _just_under(amount, lim, rules.structuring_ratio)
    ]
    if limits:
        since = now - timedelta(minutes=rules.structuring_window_minutes)
        count = repo.count_payments_between(
            session,
            wallet_id=payer.id,
            since=since,
            low=int(min(limits) * rules.structuring_ratio),
            high=max(limits),
        )
        if count >= rules.structuring_count:
            _raise_alert(
                session,
                ctx,
                wallet_id=payer.id,
                rule="structuring",
                amount=amount,
                details={
                    "count": count,
                    "limit": max(limits),
                    "window_minutes": rules.structuring_window_minutes,
                },
                window_minutes=rules.structuring_window_minutes,
            )
    since = now - timedelta(minutes=rules.velocity_window_minutes)
    count = repo.count_payments_between(session, wallet_id=payer.id, since=since)
    if count >= rules.velocity_count:
        _raise_alert(
            session,
            ctx,
            wallet_id=payer.id,
            rule="velocity",
            amount=amount,
            details={"count": count, "window_minutes": rules.velocity_window_minutes},
            window_minutes=rules.velocity_window_minutes,
        )
    since = now - timedelta(minutes=rules.fan_window_minutes)
    payees = repo.distinct_payees(session, wallet_id=payer.id, since=since)
    if payees >= rules.fan_count:
        _raise_alert(
            session,
            ctx,
            wallet_id=payer.id,
            rule="fan_out",
            amount=amount,
            details={"counterparties": payees, "window_minutes": rules.fan_window_minutes},
            window_minutes=rules.fan_window_minutes,
        )
    if payee is not None:
        on_receipt(session, ctx, payee_id=payee.id, amount=amount)


def on_receipt(session: Session, ctx: OperatorContext, *, payee_id: str, amount: int) -> None:
    rules = ctx.policy.aml
    since = utcnow() - timedelta(minutes=rules.fan_window_minutes)
    payers = repo.distinct_payers(session, wallet_id=payee_id, since=since)
    if payers >= rules.fan_count:
        _raise_alert(
            session,
            ctx,
            wallet_id=payee_id,
            rule="fan_in",
            amount=amount,
            details={"counterparties": payers, "window_minutes": rules.fan_window_minutes},
            window_minutes=rules.fan_window_minutes,
        )


def on_unload(session: Session, ctx: OperatorContext, *, wallet: Wallet, amount: int) -> None:
    """Loaded from a deposit or in cash, and soon unloaded again: layering through the wallet."""
    rules = ctx.policy.aml
    wallet_id = wallet.id
    since = utcnow() - timedelta(minutes=rules.load_unload_window_minutes)
    loaded, unloaded = repo.exchange_totals(session, account_id=wallet.account_id, since=since)
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
