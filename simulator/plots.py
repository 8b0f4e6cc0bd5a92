"""A run's plots (`plots/*.png`), drawn from its series, timing and summary.

Rendering is deterministic (fixed figure size and dpi, no timestamps, no PNG software tag):
rendering a run twice gives the same bytes. Plots are drawn on bare `Figure` objects with the
Agg canvas, so no pyplot state or GUI backend is involved. `simulator/compare.py` draws its
overlaid plots with the same helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from simulator.outputs import classify_columns, is_amount
from simulator.report_format import Series, label, money_format, title_case

FIGSIZE = (9.0, 4.5)
DPI = 100
PLOTS_DIR = "plots"


# ------------------------------------------------------------------ plotting


def time_axis(series_list: Sequence[Series]) -> tuple[str, float, str]:
    """(column, divisor, axis label) shared by all of `series_list`: simulated time in a
    readable unit when every series has `time_s`, else the step number."""
    if series_list and all(s and "time_s" in s[0] for s in series_list):
        longest = max(float(row["time_s"]) for s in series_list for row in s)
        for unit, size in (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
            if longest >= 3 * size:
                return "time_s", size, f"simulated time ({unit})"
        return "time_s", 1.0, "simulated time (s)"
    return "step", 1.0, "step"


def x_values(series: Series, axis: tuple[str, float, str]) -> list[float]:
    column, divisor, _ = axis
    if series and column in series[0]:
        return [float(row[column]) / divisor for row in series]
    return [float(i + 1) for i in range(len(series))]


def y_values(series: Series, column: str, amount: bool, decimals: int) -> list[float]:
    scale = 10**decimals if amount else 1
    return [float(row.get(column, float("nan"))) / scale for row in series]


def _tick(value: float, _pos: int | None = None) -> str:
    if value.is_integer() or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.6g}"


def new_figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    figure = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.yaxis.set_major_formatter(FuncFormatter(_tick))
    return figure, ax


def save_figure(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    figure.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    tmp.replace(path)


@dataclass(frozen=True)
class Plot:
    file: str  # relative to the report, e.g. "plots/money_stock.png"
    title: str
    sentence: str


class _Plotter:
    def __init__(self, run_dir: Path, series: Series, summary: Mapping[str, Any]) -> None:
        self.dir = run_dir / PLOTS_DIR
        self.series = series
        self.summary = summary
        self.decimals, self.currency = money_format(summary)
        self.axis = time_axis([series])
        self.xs = x_values(series, self.axis)
        self.plots: list[Plot] = []
        self.used: set[str] = set()  # columns plotted so far
        self.all_zero: list[str] = []  # columns not plotted because they are 0 throughout

    def unit(self, amount: bool) -> str:
        return (self.currency or "major units") if amount else "count"

    def lines(
        self,
        name: str,
        title: str,
        sentence: str,
        columns: Sequence[tuple[str, str]],
        *,
        amount: bool,
        skip_all_zero: bool = False,
    ) -> None:
        """One line per (column, legend label) that exists; skipped when none exists (or, with
        `skip_all_zero`, when every value is 0: those columns are listed in `all_zero`)."""
        present = [(c, lbl) for c, lbl in columns if self.series and c in self.series[0]]
        if not present:
            return
        if skip_all_zero and all(row[c] == 0 for row in self.series for c, _ in present):
            self.all_zero.extend(c for c, _ in present)
            return
        figure, ax = new_figure(title, self.axis[2], self.unit(amount))
        self.used.update(c for c, _ in present)
        for column, legend in present:
            ax.plot(self.xs, y_values(self.series, column, amount, self.decimals), label=legend)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
        self.save(figure, name, title, sentence)

    def stacked(
        self, name: str, title: str, sentence: str, columns: Sequence[tuple[str, str]]
    ) -> None:
        present = [(c, lbl) for c, lbl in columns if self.series and c in self.series[0]]
        if not present:
            return
        figure, ax = new_figure(title, self.axis[2], "payments per step")
        self.used.update(c for c, _ in present)
        ax.stackplot(
            self.xs,
            *[y_values(self.series, c, False, 0) for c, _ in present],
            labels=[lbl for _, lbl in present],
            step="mid",
        )
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
        self.save(figure, name, title, sentence)

    def save(self, figure: Figure, name: str, title: str, sentence: str) -> None:
        save_figure(figure, self.dir / f"{name}.png")
        self.plots.append(Plot(f"{PLOTS_DIR}/{name}.png", title, sentence))


def plot_run(
    run_dir: Path, series: Series, timing: Series, summary: Mapping[str, Any]
) -> tuple[list[Plot], list[str]]:
    """The plots drawn, and the columns left out because they are 0 throughout."""
    cols = classify_columns(series[0] if series else [], summary)
    p = _Plotter(run_dir, series, summary)
    unit = p.currency or "major units"

    def total(*metrics: str) -> list[tuple[str, str]]:
        return [(m, label(m)) for m in metrics]

    def by_operator(metric: str) -> list[tuple[str, str]]:
        return sorted((column, code) for code, column in cols.per_operator.get(metric, {}).items())

    p.lines(
        "money_stock",
        "Money stock",
        f"CBDC outstanding, household cash and bank deposits at the end of each step ({unit}).",
        total("cbdc_outstanding", "household_cash", "deposits"),
        amount=True,
    )
    p.lines(
        "holdings",
        "Where the CBDC is held",
        f"CBDC in customers' wallets and in operators' vaults ({unit}).",
        total("wallet_balances", "vault_float"),
        amount=True,
    )
    for metric, title, sentence in (
        ("reserves", "Reserves per operator", "Each operator's reserves at the central bank"),
        ("vault_float", "Vault float per operator", "CBDC each operator holds in its vault"),
        ("deposits", "Deposits per operator", "Bank deposits held at each operator"),
        ("wallet_balances", "Wallet balances per operator", "CBDC in each operator's wallets"),
        ("cbdc_outstanding", "CBDC outstanding per operator", "CBDC issued through each operator"),
    ):
        p.lines(
            f"{metric}_by_operator",
            title,
            f"{sentence} at the end of each step ({unit}).",
            by_operator(metric),
            amount=True,
        )
    p.lines(
        "settlement",
        "Settlement and liquidity",
        f"Gross value settled per step against its net after netting, the liquidity that "
        f"settlement needed, and any shortfall ({unit}).",
        total("gross_settlement", "net_settlement", "liquidity_need", "liquidity_shortfall"),
        amount=True,
    )
    p.lines(
        "liquidity_by_operator",
        "Liquidity need per operator",
        f"Liquidity each operator needed to settle its payments in each step ({unit}).",
        by_operator("liquidity_need"),
        amount=True,
    )
    failures = [(c, label(c)) for c in sorted(cols.failures)]
    if failures:
        p.used.add("payments_failed")  # the sum of the failed.<reason> columns stacked here
    else:
        failures = total("payments_failed")
    p.stacked(
        "payments",
        "Payments per step",
        "Payments settled and failed in each step, failures stacked by reason.",
        total("payments_ok") + failures,
    )
    p.lines(
        "compliance",
        "Wallet limits and AML alerts",
        "Payments refused or swept at a wallet-class limit, and AML alerts raised, per step.",
        total("limit_hits", "aml_alerts"),
        amount=False,
    )
    _plot_offline(p, total, by_operator)
    _plot_programmable(p, total)
    p.lines(
        "adoption",
        "Wallet adoption",
        "Number of wallets opened by the end of each step.",
        total("wallets_adopted"),
        amount=False,
    )
    # Whatever else the engine emitted: one plot per metric not plotted above.
    for metric in sorted(m for m in cols.totals if m not in p.used):
        amount = is_amount(metric, summary)
        p.lines(
            f"total_{metric}",
            title_case(label(metric)),
            f"{title_case(label(metric))}, network-wide, per step ({p.unit(amount)}).",
            [(metric, label(metric))],
            amount=amount,
            skip_all_zero=True,
        )
    for metric, by_code in sorted(cols.per_operator.items()):
        if set(by_code.values()) <= p.used:
            continue
        amount = is_amount(metric, summary)
        p.lines(
            f"{metric}_by_operator",
            f"{title_case(label(metric))} per operator",
            f"{title_case(label(metric))} per step, one line per operator ({p.unit(amount)}).",
            by_operator(metric),
            amount=amount,
            skip_all_zero=True,
        )
    _plot_throughput(p, timing, summary)
    return p.plots, p.all_zero


def _plot_offline(
    p: _Plotter,
    total: Callable[..., list[tuple[str, str]]],
    by_operator: Callable[[str], list[tuple[str, str]]],
) -> None:
    """Offline use (simulator/offline_metrics.py): drawn only when the run had devices."""
    if not p.series or "offline_payments" not in p.series[0]:
        return
    unit = p.currency or "major units"
    p.lines(
        "offline_payments",
        "Offline payments and double spends",
        "Payments made device to device with no network, double-spend attempts among them (a "
        "counter another copy or an earlier state of the device had signed), and double spends "
        "the payers' operators detected at sync, per step.",
        total("offline_payments", "double_spend_attempts", "double_spends_detected"),
        amount=False,
    )
    p.lines(
        "offline_devices",
        "Offline devices",
        "Devices registered and devices revoked by the end of each step, and device syncs the "
        "operators took in each step.",
        total("devices", "devices_revoked", "offline_syncs"),
        amount=False,
    )
    p.lines(
        "offline_value",
        "Offline value",
        f"Value of the offline payments made in each step, and value held in offline purses "
        f"(the operators' ledgers) at its end ({unit}).",
        total("offline_value", "purse_balances"),
        amount=True,
    )
    p.lines(
        "fraud_losses_by_operator",
        "Fraud losses per operator",
        f"Losses each operator carried so far for its devices' double spends, after what it "
        f"recovered from the payers' wallets ({unit}).",
        by_operator("fraud_losses"),
        amount=True,
    )
    # per operator, only losses, purses and detections get a plot of their own
    for metric in (
        "detection_delay_s",
        "devices",
        "devices_revoked",
        "offline_syncs",
        "offline_payments",
        "offline_value",
        "double_spend_attempts",
    ):
        p.used.update(column for column, _ in by_operator(metric))
    _plot_detection(p)


def _plot_programmable(p: _Plotter, total: Callable[..., list[tuple[str, str]]]) -> None:
    """Programmable money (simulator/programmable_metrics.py): drawn when the run has them."""
    unit = p.currency or "major units"
    p.lines(
        "vouchers",
        "Stimulus and vouchers",
        f"Stimulus paid or granted to households, voucher spending and unspent voucher value "
        f"returned at expiry in each step, and value held in vouchers at its end ({unit}).",
        total("stimulus_paid", "voucher_spending", "expiry_returns", "voucher_outstanding"),
        amount=True,
    )
    p.lines(
        "velocity",
        "Velocity",
        "Value of the payments made in each step (ordinary, from vouchers, escrows opened) "
        "divided by the money the public holds at its end (households' and merchants' wallets, "
        "vouchers and open escrows; not the agency's wallet).",
        total("velocity"),
        amount=False,
    )
    p.lines(
        "money_held",
        "Money held and payments' value",
        f"Money the public holds at the end of each step and the value of the payments made in "
        f"it ({unit}).",
        total("money_held", "payments_value"),
        amount=True,
    )
    p.lines(
        "escrows",
        "Escrows",
        f"Escrow value released to payees and refunded to payers at the deadline in each step, "
        f"and value locked in open escrows at its end ({unit}).",
        total("escrows_released", "escrows_refunded", "escrow_locked"),
        amount=True,
        skip_all_zero=True,
    )


def _plot_detection(p: _Plotter) -> None:
    """Mean time to detection of the double spends detected in each step (hours), one point per
    step with detections."""
    if "detection_delay_s" not in p.series[0]:
        return
    points = [
        (x, float(row["detection_delay_s"]) / float(row["double_spends_detected"]) / 3600)
        for x, row in zip(p.xs, p.series, strict=True)
        if row.get("double_spends_detected", 0) > 0
    ]
    p.used.add("detection_delay_s")
    if not points:
        return
    figure, ax = new_figure("Time to detection", p.axis[2], "hours")
    ax.plot([x for x, _ in points], [y for _, y in points], "o-", label="mean per step")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    p.save(
        figure,
        "time_to_detection",
        "Time to detection",
        "Mean time from the first transfer involved in a double spend to its detection by the "
        "payer's operator, for the double spends detected in each step (hours).",
    )


def _plot_throughput(p: _Plotter, timing: Series, summary: Mapping[str, Any]) -> None:
    if not timing:
        return
    columns = list(timing[0])
    if "payments_per_second" in columns:
        shown = ["payments_per_second"]
    else:
        shown = [c for c in columns if c not in ("step", "time_s")]
    if not shown:
        return
    xs = (
        [float(row["step"]) for row in timing]
        if "step" in columns
        else [float(i + 1) for i in range(len(timing))]
    )
    figure, ax = new_figure("Throughput (wall clock)", "step", ", ".join(label(c) for c in shown))
    for column in shown:
        ax.plot(xs, [float(row[column]) for row in timing], label=label(column))
    overall = summary.get("payments_per_second")
    if shown == ["payments_per_second"] and isinstance(overall, int | float):
        ax.axhline(float(overall), linestyle="--", color="grey", label="run average")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    p.save(
        figure,
        "throughput",
        "Throughput",
        "Payments processed per wall-clock second in each step (from timing.csv; this depends "
        "on the machine and is not reproducible).",
    )
