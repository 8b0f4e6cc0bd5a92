"""Two runs side by side: end-of-run, run-total and peak figures with their differences, and
overlaid plots of the key metrics (`compare.md` + `plots/*.png` in the output folder)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib import style as mpl_style

from simulator.outputs import (
    FLOW_METRICS,
    STOCK_METRICS,
    classify_columns,
    is_amount,
    is_flow,
    read_series,
    read_summary,
)
from simulator.plots import PLOTS_DIR, new_figure, save_figure, time_axis, x_values, y_values
from simulator.report_format import (
    Series,
    figures,
    format_pct,
    format_value,
    label,
    md_table,
    money_format,
    title_case,
)

COMPARE_MD = "compare.md"

# Run-level figures taken from summary.json (count or rate, never amounts).
SUMMARY_FIGURES = (
    "payments_total",
    "payments_ok",
    "payments_failed",
    "payments_per_second",
    "velocity_during_stimulus",  # programmable money (simulator/programmable_metrics.py)
    "velocity_after_stimulus",
)


class ComparisonError(ValueError):
    """The two runs cannot be compared (e.g. different currencies)."""


@dataclass(frozen=True)
class ComparisonRow:
    figure: str  # e.g. "bank deposits, end of run"
    metric: str  # series column or summary key
    stat: str  # "end" | "total" | "peak" | "run" (summary.json) | "reason" (failed_by_reason)
    a: float | None  # amounts in minor units
    b: float | None
    amount: bool

    @property
    def diff(self) -> float | None:
        """b - a (exact for integers)."""
        if self.a is None or self.b is None:
            return None
        return self.b - self.a

    @property
    def pct(self) -> float | None:
        """(b - a) / |a| in percent; None when a is 0 (unless b is 0 too) or either is absent."""
        diff = self.diff
        if diff is None or self.a is None:
            return None
        if self.a == 0:
            return 0.0 if diff == 0 else None
        return 100.0 * diff / abs(self.a)

    def cells(self, decimals: int, currency: str) -> tuple[str, str, str, str, str]:
        def fmt(value: float | None, signed: bool = False) -> str:
            return format_value(
                value, amount=self.amount, decimals=decimals, currency=currency, signed=signed
            )

        return (self.figure, fmt(self.a), fmt(self.b), fmt(self.diff, True), format_pct(self.pct))


@dataclass
class ComparisonResult:
    run_a: Path
    run_b: Path
    name_a: str  # run folder names
    name_b: str
    out_dir: Path
    report: Path  # compare.md
    rows: list[ComparisonRow]
    decimals: int
    currency: str
    plots: list[Path] = field(default_factory=list)

    def table_rows(self) -> list[tuple[str, str, str, str, str]]:
        """(figure, A, B, B - A, %) formatted for people, amounts in major units."""
        return [row.cells(self.decimals, self.currency) for row in self.rows]


def _key_metrics(a_cols: list[str], b_cols: list[str]) -> list[str]:
    present = set(a_cols) | set(b_cols)
    known = [m for m in (*STOCK_METRICS, *FLOW_METRICS) if m in present]
    rest = sorted(m for m in present if m not in known and not m.startswith("failed."))
    return known + rest


def _rows(
    series_a: Series,
    series_b: Series,
    summary_a: Mapping[str, Any],
    summary_b: Mapping[str, Any],
    metrics: list[str],
) -> list[ComparisonRow]:
    rows = []
    for metric in metrics:
        amount = is_amount(metric, summary_a) or is_amount(metric, summary_b)
        fa, fb = figures(series_a, metric), figures(series_b, metric)
        name = label(metric)
        if is_flow(metric):
            rows.append(
                ComparisonRow(f"{name}, run total", metric, "total", fa.total, fb.total, amount)
            )
        else:
            rows.append(ComparisonRow(f"{name}, end of run", metric, "end", fa.end, fb.end, amount))
        rows.append(
            ComparisonRow(f"{name}, peak per step", metric, "peak", fa.peak, fb.peak, amount)
        )
    for key in SUMMARY_FIGURES:
        if key in metrics:
            continue  # already compared from the series
        if key in summary_a or key in summary_b:
            rows.append(
                ComparisonRow(
                    f"{label(key)} (run)", key, "run", summary_a.get(key), summary_b.get(key), False
                )
            )
    reasons_a = summary_a.get("failed_by_reason") or {}
    reasons_b = summary_b.get("failed_by_reason") or {}
    for reason in sorted(set(reasons_a) | set(reasons_b)):
        rows.append(
            ComparisonRow(
                f"failed: {reason}",
                f"failed.{reason}",
                "reason",
                reasons_a.get(reason, 0),
                reasons_b.get(reason, 0),
                False,
            )
        )
    return rows


def default_out_dir(a: Path, b: Path) -> Path:
    """`compare-<A>-vs-<B>` next to run A (in the runs root)."""
    return a.parent / f"compare-{a.name}-vs-{b.name}"


def compare_runs(a: Path, b: Path, out_dir: Path | None = None) -> ComparisonResult:
    """Compare run folders `a` and `b`; write `compare.md` and `plots/<metric>.png` into
    `out_dir` (default: `compare-<A>-vs-<B>` beside run A)."""
    summary_a, summary_b = read_summary(a), read_summary(b)
    decimals, currency = money_format(summary_a)
    if (decimals, currency) != money_format(summary_b):
        raise ComparisonError(
            f"the runs use different money: {a.name} in {currency} ({decimals} decimals), "
            f"{b.name} in {money_format(summary_b)[1]} ({money_format(summary_b)[0]} decimals)"
        )
    series_a, series_b = read_series(a), read_series(b)
    cols_a = classify_columns(series_a[0] if series_a else [], summary_a)
    cols_b = classify_columns(series_b[0] if series_b else [], summary_b)
    metrics = _key_metrics(cols_a.totals, cols_b.totals)
    rows = _rows(series_a, series_b, summary_a, summary_b, metrics)

    out = out_dir if out_dir is not None else default_out_dir(a, b)
    plots_dir = out / PLOTS_DIR
    plots_dir.mkdir(parents=True, exist_ok=True)
    for stale in plots_dir.glob("*.png"):
        stale.unlink()
    plots = []
    axis = time_axis([series_a, series_b])
    with mpl_style.context("default"):
        for metric in metrics:
            amount = is_amount(metric, summary_a)
            unit = (currency or "major units") if amount else "count"
            figure, ax = new_figure(f"{title_case(label(metric))}: A vs B", axis[2], unit)
            for tag, series in (("A", series_a), ("B", series_b)):
                if series and metric in series[0]:
                    ax.plot(
                        x_values(series, axis),
                        y_values(series, metric, amount, decimals),
                        label=f"{tag}: {(a if tag == 'A' else b).name}",
                        linestyle="-" if tag == "A" else "--",
                    )
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
            path = plots_dir / f"{metric}.png"
            save_figure(figure, path)
            plots.append(path)

    result = ComparisonResult(
        run_a=a,
        run_b=b,
        name_a=a.name,
        name_b=b.name,
        out_dir=out,
        report=out / COMPARE_MD,
        rows=rows,
        decimals=decimals,
        currency=currency,
        plots=plots,
    )
    _write_markdown(result, summary_a, summary_b)
    return result


def _write_markdown(
    result: ComparisonResult, summary_a: Mapping[str, Any], summary_b: Mapping[str, Any]
) -> None:
    def describe(tag: str, path: Path, summary: Mapping[str, Any]) -> list[str]:
        lines = [f"- **{tag}**: `{path.name}` — {summary.get('name', '?')}"]
        if summary.get("question"):
            lines.append(f"  - question: {summary['question']}")
        lines.append(
            f"  - seed {summary.get('seed', '?')}, digest `{summary.get('scenario_digest', '?')}`,"
            f" {summary.get('steps', '?')} steps, settlement {summary.get('settlement_mode', '?')}"
        )
        ok = summary.get("invariants_ok")
        lines.append(f"  - invariants: {'held' if ok else 'VIOLATED' if ok is False else '?'}")
        return lines

    unit = f" of {result.currency}" if result.currency else ""
    parts = [
        f"# Comparison: {result.name_a} vs {result.name_b}",
        "",
        *describe("A", result.run_a, summary_a),
        *describe("B", result.run_b, summary_b),
        "",
        f"Amounts in major units{unit}. Difference is B − A; % is relative to A.",
        "",
        md_table(("figure", "A", "B", "B − A", "%"), result.table_rows()),
        "",
        "## Plots",
        "",
    ]
    for path in result.plots:
        metric = path.stem
        parts += [
            f"### {title_case(label(metric))}",
            "",
            f"![{label(metric)}]({PLOTS_DIR}/{path.name})",
            "",
            f"{title_case(label(metric))} over the run: A (solid) against B (dashed).",
            "",
        ]
    tmp = result.report.with_name(f".{result.report.name}.tmp")
    tmp.write_text("\n".join(parts).rstrip() + "\n", encoding="utf-8")
    tmp.replace(result.report)
