"""Names and numbers for people, shared by a run's report and the comparison of two runs:
metric labels, amounts in major units with the currency, markdown tables, and the end-of-run,
run-total and peak figures of a series column."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cbdc.money import format_amount
from simulator.outputs import FLOW_METRICS, STOCK_METRICS, Columns, is_flow

LABELS = {
    "cbdc_outstanding": "CBDC outstanding",
    "household_cash": "household cash",
    "deposits": "bank deposits",
    "reserves": "reserves at the central bank",
    "vault_float": "operator vault float",
    "wallet_balances": "wallet balances",
    "cash_on_hand": "cash on hand",
    "wallets_adopted": "wallets adopted",
    "gross_settlement": "gross settlement",
    "net_settlement": "net settlement",
    "liquidity_need": "liquidity need",
    "liquidity_shortfall": "liquidity shortfall",
    "payments_ok": "payments settled",
    "payments_failed": "payments failed",
    "limit_hits": "wallet limit hits",
    "aml_alerts": "AML alerts",
    "payments_total": "payments attempted",
    "payments_per_second": "payments per second",
    "wall_seconds": "wall-clock seconds",
    "offline_payments": "offline payments",
    "offline_value": "offline payments' value",
    "purse_balances": "value in offline purses",
    "fraud_losses": "fraud losses carried",
    "devices": "offline devices",
    "devices_revoked": "devices revoked",
    "double_spend_attempts": "double-spend attempts",
    "double_spends_detected": "double spends detected",
    "detection_delay_s": "time to detection (s, summed)",
    "offline_syncs": "device syncs",
    "stimulus_paid": "stimulus paid",
    "voucher_spending": "voucher spending",
    "voucher_outstanding": "vouchers outstanding",
    "expiry_returns": "voucher expiry returns",
    "payments_value": "payments' value",
    "money_held": "money held by the public",
    "velocity": "velocity (payments' value / money held, per step)",
    "velocity_during_stimulus": "velocity during the voucher period",
    "velocity_after_stimulus": "velocity after the voucher period",
    "escrows_opened": "escrows opened",
    "escrows_released": "escrow value released",
    "escrows_refunded": "escrow value refunded",
    "escrow_locked": "value locked in escrows",
}


Series = Sequence[Mapping[str, float]]


def title_case(text: str) -> str:
    """First letter up, the rest untouched ("CBDC outstanding" stays as it is)."""
    return text[:1].upper() + text[1:]


def label(metric: str) -> str:
    if metric.startswith("failed."):
        return "failed: " + metric[len("failed.") :].replace("_", " ")
    return LABELS.get(metric, metric.replace("_", " "))


# ------------------------------------------------------------------ numbers for people


def money_format(summary: Mapping[str, Any]) -> tuple[int, str]:
    return int(summary.get("decimals", 2)), str(summary.get("currency", ""))


def format_value(
    value: float | None,
    *,
    amount: bool,
    decimals: int = 2,
    currency: str = "",
    signed: bool = False,
) -> str:
    """Amounts (minor units) in major units with the currency; counts with separators."""
    if value is None or value != value:  # None or NaN
        return "—"
    sign = "+" if signed and value > 0 else ""
    if amount:
        return sign + format_amount(int(round(value)), decimals, currency)
    if float(value).is_integer():
        return f"{sign}{int(value):,}"
    if abs(value) < 1:  # ratios such as velocity
        return f"{sign}{value:.4f}"
    return f"{sign}{value:,.2f}"


def format_pct(pct: float | None) -> str:
    if pct is None:
        return "—"
    if pct == 0:
        return "0.0%"
    return f"{pct:+.2f}%" if abs(pct) < 0.1 else f"{pct:+.1f}%"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]], right_from: int = 1) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append(
        "|" + "|".join("---:" if i >= right_from else "---" for i in range(len(header))) + "|"
    )
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
    return "\n".join(lines)


# ------------------------------------------------------------------ figure figures


@dataclass(frozen=True)
class Figures:
    """End-of-run, run total and peak of one column."""

    end: float | None
    total: float | None
    peak: float | None


def figures(series: Series, column: str, flow: bool | None = None) -> Figures:
    """`flow` defaults to whether `column` names a flow metric (a per-operator column needs it
    given: `figures(series, "payments_ok.BKA1", flow=True)`)."""
    values = [row[column] for row in series if column in row and row[column] == row[column]]
    if not values:
        return Figures(None, None, None)
    total = sum(values) if (is_flow(column) if flow is None else flow) else None
    return Figures(values[-1], total, max(values))


def headline_metrics(cols: Columns) -> list[str]:
    """Network-wide metrics in report order: known stocks, known flows, then the rest."""
    present = set(cols.totals)
    ordered = [m for m in (*STOCK_METRICS, *FLOW_METRICS) if m in present]
    rest = sorted(m for m in cols.totals if m not in ordered and not m.startswith("failed."))
    return ordered + rest
