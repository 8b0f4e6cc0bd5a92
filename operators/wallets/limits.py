"""Class limits of a wallet (policy file): balance cap, per payment, per day and per year,
with the spend counters they are judged against, and giving a spend back when a payment
returns."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cbdc.money import format_amount
from cbdc.policy import ClassLimits, WalletClass
from operators.context import OperatorContext
from operators.errors import (
    AnnualLimit,
    BalanceCap,
    DailyLimit,
    PayeeBalanceCap,
    SinglePaymentLimit,
    WalletNotActive,
)
from operators.models import Order, Wallet
from operators.wallets import repository as wallet_repo


def limits_of(ctx: OperatorContext, wallet: Wallet) -> ClassLimits:
    return ctx.policy.limits(wallet.wallet_class)


def local_day(ctx: OperatorContext) -> tuple[Any, int]:
    now = ctx.now().astimezone(ctx.timezone)
    return now.date(), now.year


def unspend(session: Session, ctx: OperatorContext, *, order: Order) -> None:
    """A payment that came back (refund, return) no longer counts against daily/annual limits."""
    if order.kind != "payment":
        return  # offline payments never counted (their device certificate's limits bound them)
    wallet = wallet_repo.get_wallet(session, order.wallet_id, lock=True)
    if wallet is None:
        return
    day = order.created_at.astimezone(ctx.timezone)
    day_total = wallet.spent_day_total
    year_total = wallet.spent_year_total
    if wallet.spent_day == day.date():
        day_total = max(0, day_total - order.amount)
    if wallet.spent_year == day.year:
        year_total = max(0, year_total - order.amount)
    wallet_repo.update_spend_counters(
        session,
        wallet.id,
        day=wallet.spent_day,
        day_total=day_total,
        year=wallet.spent_year or day.year,
        year_total=year_total,
    )


def require_active(wallet: Wallet, role: str = "wallet") -> None:
    if wallet.status != "active":
        raise WalletNotActive(f"{role} {wallet.id} is {wallet.status}")


def check_outgoing_limits(
    ctx: OperatorContext,
    wallet: Wallet,
    amount: int,
    *,
    today: Any = None,
    year: int | None = None,
) -> tuple[int, int]:
    """(spent today, spent this year) including `amount`; raises the class limit it breaks.
    `today`/`year` default to the context clock's."""
    limits = limits_of(ctx, wallet)
    if today is None or year is None:
        today, year = local_day(ctx)
    day_total = (wallet.spent_day_total if wallet.spent_day == today else 0) + amount
    year_total = (wallet.spent_year_total if wallet.spent_year == year else 0) + amount
    if (
        (limits.single_payment is None or amount <= limits.single_payment)
        and (limits.daily is None or day_total <= limits.daily)
        and (limits.annual is None or year_total <= limits.annual)
    ):
        return day_total, year_total
    name = WalletClass(wallet.wallet_class).name
    if limits.single_payment is not None and amount > limits.single_payment:
        raise SinglePaymentLimit(
            f"class {name} allows at most {fmt_money(ctx, limits.single_payment)} per payment",
            limit=limits.single_payment,
        )
    if limits.daily is not None and day_total > limits.daily:
        raise DailyLimit(
            f"class {name} allows {fmt_money(ctx, limits.daily)} per day; "
            f"{fmt_money(ctx, day_total - amount)} already spent today",
            limit=limits.daily,
        )
    if limits.annual is not None and year_total > limits.annual:
        raise AnnualLimit(
            f"class {name} allows {fmt_money(ctx, limits.annual)} per year; "
            f"{fmt_money(ctx, year_total - amount)} already spent this year",
            limit=limits.annual,
        )
    return day_total, year_total


def check_cap(
    ctx: OperatorContext, wallet: Wallet, balance: int, amount: int, *, payee: bool
) -> None:
    cap = limits_of(ctx, wallet).balance_cap
    if cap is not None and balance + amount > cap:
        error = PayeeBalanceCap if payee else BalanceCap
        raise error(
            f"class {WalletClass(wallet.wallet_class).name} balance cap is {fmt_money(ctx, cap)}; "
            f"balance {fmt_money(ctx, balance)} + {fmt_money(ctx, amount)} would exceed it",
            limit=cap,
        )


def fmt_money(ctx: OperatorContext, minor: int) -> str:
    return format_amount(minor, ctx.decimals, ctx.currency)


def cap_overflow(ctx: OperatorContext, payee: Wallet, balance: int, amount: int) -> int:
    """How much of `amount` must be swept past the payee's cap (0 if it fits); refuses when
    the policy says so."""
    cap = limits_of(ctx, payee).balance_cap
    if cap is None or balance + amount <= cap:
        return 0
    if ctx.policy.overflow != "sweep":
        check_cap(ctx, payee, balance, amount, payee=True)
    return balance + amount - max(cap, balance)
