"""A run folder's report: `plots/*.png` and `report.md`, rebuilt from the run's files alone.

Rendering is deterministic (fixed figure size and dpi, no timestamps, no PNG software tag):
rendering a run twice gives the same bytes. Plots are drawn on bare `Figure` objects with the
Agg canvas, so no pyplot state or GUI backend is involved.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib import style as mpl_style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from cbdc.money import format_amount
from simulator.outputs import (
    FLOW_METRICS,
    SCENARIO_TOML,
    STOCK_METRICS,
    Columns,
    classify_columns,
    is_amount,
    is_flow,
    read_series,
    read_summary,
    read_timing,
)

FIGSIZE = (9.0, 4.5)
DPI = 100
PLOTS_DIR = "plots"
REPORT_MD = "report.md"

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
}

# summary.json keys the report shows in its own sections; any other key is listed generically.
KNOWN_SUMMARY_KEYS = frozenset(
    {
        "name",
        "question",
        "description",
        "seed",
        "scenario_digest",
        "operators",
        "currency",
        "decimals",
        "steps",
        "step_seconds",
        "settlement_mode",
        "payments_total",
        "payments_ok",
        "payments_failed",
        "failed_by_reason",
        "wall_seconds",
        "phase_seconds",
        "payments_per_second",
        "invariants_checked",
        "invariants_ok",
        "started_at",
        "parquet",
        "amount_metrics",
        "invariant_failures",
    }
)

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


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size and seconds % size == 0 or seconds >= 3 * size:
            value = seconds / size
            return f"{value:g} {unit}" if value != 1 else f"1 {unit[:-1]}"
    return f"{seconds:g} s"


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


def _plot_run(
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


# ------------------------------------------------------------------ report.md


def _run_table(run_dir: Path, summary: Mapping[str, Any]) -> str:
    decimals, currency = money_format(summary)
    rows: list[tuple[str, Any]] = [("run folder", f"`{run_dir.name}`")]
    if "started_at" in summary:
        rows.append(("started", summary["started_at"]))
    if "seed" in summary:
        rows.append(("seed", summary["seed"]))
    if "scenario_digest" in summary:
        rows.append(("scenario digest", f"`{summary['scenario_digest']}`"))
    operators = summary.get("operators")
    if operators:
        rows.append(("operators", ", ".join(str(o) for o in operators)))
    if currency:
        rows.append(("currency", f"{currency} ({decimals} decimals)"))
    if "steps" in summary:
        steps = f"{summary['steps']:,}"
        if isinstance(summary.get("step_seconds"), int | float):
            span = summary["steps"] * summary["step_seconds"]
            steps += f" × {_duration(summary['step_seconds'])} = {_duration(span)} simulated"
        rows.append(("steps", steps))
    if "settlement_mode" in summary:
        rows.append(("settlement", summary["settlement_mode"]))
    if "wall_seconds" in summary:
        rows.append(("wall-clock time", f"{float(summary['wall_seconds']):,.1f} s"))
    phases = summary.get("phase_seconds")
    if isinstance(phases, Mapping) and phases:
        rows.append(
            (
                "of which",
                " · ".join(f"{name} {float(value):,.1f} s" for name, value in phases.items()),
            )
        )
    if "payments_per_second" in summary:
        rows.append(("payments per second", f"{float(summary['payments_per_second']):,.1f}"))
    return md_table(("", ""), rows, right_from=99)


def _headline(series: Series, cols: Columns, summary: Mapping[str, Any]) -> str:
    decimals, currency = money_format(summary)
    rows = []
    for metric in headline_metrics(cols):
        f = figures(series, metric)
        amount = is_amount(metric, summary)

        def fmt(v: float | None, amount: bool = amount) -> str:
            return format_value(v, amount=amount, decimals=decimals, currency=currency)

        rows.append((label(metric), fmt(f.end), fmt(f.total), fmt(f.peak)))
    for key in ("payments_total", "payments_ok", "payments_failed"):
        if key in summary and key not in cols.totals:
            rows.append((f"{label(key)} (run)", "", format_value(summary[key], amount=False), ""))
    if not rows:
        return "_The series has no columns to report._"
    return md_table(("figure", "end of run", "run total", "peak per step"), rows)


def _by_operator(
    series: Series, cols: Columns, summary: Mapping[str, Any], flows: bool
) -> str | None:
    """Per-operator table: stocks at the end of the run, or (`flows`) flows summed over it."""
    decimals, currency = money_format(summary)
    order = [m for m in (*STOCK_METRICS, *FLOW_METRICS) if m in cols.per_operator]
    metrics = order + sorted(m for m in cols.per_operator if m not in order)
    metrics = [m for m in metrics if is_flow(m) == flows]
    if not series or not metrics:
        return None
    rows = []
    for code in cols.operators:
        row = [code]
        for metric in metrics:
            column = cols.per_operator[metric].get(code)
            f = figures(series, column, flows) if column else Figures(None, None, None)
            amount = is_amount(metric, summary)
            value = f.total if flows else f.end
            row.append(format_value(value, amount=amount, decimals=decimals, currency=currency))
        rows.append(row)
    return md_table(["operator"] + [label(m) for m in metrics], rows)


def _invariants(summary: Mapping[str, Any]) -> str:
    ok = summary.get("invariants_ok")
    checked = summary.get("invariants_checked")
    times = f" ({checked:,} checks)" if isinstance(checked, int) else ""
    if ok is True:
        return f"**All invariants held**{times}."
    if ok is not False:
        return "_The run did not report an invariant check._"
    text = f"**INVARIANT VIOLATED**{times}."
    failures = summary.get("invariant_failures")
    if isinstance(failures, list) and failures and all(isinstance(f, Mapping) for f in failures):
        keys = ["step", "name", "left", "right"]
        keys += sorted({k for f in failures for k in f} - {*keys, "ok"})
        rows = [[_plain(f.get(k, "")) for k in keys] for f in failures]
        text += f" First {len(failures)} failed checks:\n\n" + md_table(keys, rows, right_from=99)
    elif failures:
        text += f" Failed checks: `{json.dumps(failures, sort_keys=True, default=str)}`"
    return text


def _plain(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _failures(series: Series, cols: Columns, summary: Mapping[str, Any]) -> str:
    by_reason = summary.get("failed_by_reason")
    if not isinstance(by_reason, Mapping):
        by_reason = {cols.reason(c): figures(series, c).total or 0 for c in cols.failures}
    total_failed = sum(by_reason.values())
    if not total_failed:
        return "No payment failed."
    attempted = summary.get("payments_total")
    rows = []
    for reason, count in sorted(by_reason.items(), key=lambda item: (-item[1], item[0])):
        of_attempted = (
            f"{100 * count / attempted:.2f}%" if isinstance(attempted, int) and attempted else "—"
        )
        rows.append(
            (f"`{reason}`", f"{count:,}", f"{100 * count / total_failed:.1f}%", of_attempted)
        )
    return md_table(("reason", "payments", "share of failures", "share of attempts"), rows)


def _other_fields(summary: Mapping[str, Any]) -> str | None:
    rows = []
    for key in sorted(k for k in summary if k not in KNOWN_SUMMARY_KEYS):
        value = summary[key]
        if isinstance(value, dict | list):
            value = "`" + json.dumps(value, sort_keys=True, ensure_ascii=False) + "`"
        rows.append((f"`{key}`", value))
    return md_table(("field", "value"), rows, right_from=99) if rows else None


def render_report(run_dir: Path) -> Path:
    """Write `<run_dir>/plots/*.png` and `<run_dir>/report.md`; return the report's path."""
    summary = read_summary(run_dir)
    series = read_series(run_dir)
    timing = read_timing(run_dir)
    cols = classify_columns(series[0] if series else [], summary)
    for stale in (run_dir / PLOTS_DIR).glob("*.png"):
        stale.unlink()
    with mpl_style.context("default"):
        plots, all_zero = _plot_run(run_dir, series, timing, summary)

    title = summary.get("name") or run_dir.name
    parts = [f"# Scenario report: {title}", ""]
    if summary.get("question"):
        parts += [f"**Question.** {summary['question']}", ""]
    if summary.get("description"):
        parts += [str(summary["description"]).strip(), ""]
    parts += ["## Run", "", _run_table(run_dir, summary), ""]
    parts += [
        "Repeat this run (same scenario file, same seed; `series.csv` should come out "
        "identical, `timing.csv` will not):",
        "",
        "```bash",
        f"cbdc scenario run {(run_dir / SCENARIO_TOML).as_posix()}",
        "```",
        "",
        "## Headline figures",
        "",
        "Amounts in major units"
        + (f" of {summary['currency']}" if summary.get("currency") else "")
        + "; stocks at the end of a step, flows summed over the run.",
        "",
        _headline(series, cols, summary),
        "",
    ]
    for flows, heading in ((False, "By operator, end of run"), (True, "By operator, run totals")):
        per_operator = _by_operator(series, cols, summary, flows)
        if per_operator:
            parts += [f"### {heading}", "", per_operator, ""]
    parts += ["## Invariants", "", _invariants(summary), ""]
    parts += ["## Failures by reason", "", _failures(series, cols, summary), ""]
    other = _other_fields(summary)
    if other:
        parts += ["## Other summary fields", "", other, ""]
    parts += ["## Plots", ""]
    if not plots:
        parts += ["_No series to plot._", ""]
    if all_zero:
        names = ", ".join(f"`{c}`" for c in all_zero)
        parts += [f"Zero throughout the run, so not plotted: {names}.", ""]
    for plot in plots:
        parts += [f"### {plot.title}", "", f"![{plot.title}]({plot.file})", "", plot.sentence, ""]
    path = run_dir / REPORT_MD
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(parts).rstrip() + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
