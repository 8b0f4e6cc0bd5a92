"""A run folder's report: `plots/*.png` and `report.md`, rebuilt from the run's files alone.

Sections of `report.md` are built here from the run's files; the plots are drawn by
`simulator/plots.py`, names and numbers formatted by `simulator/report_format.py`.

Rendering is deterministic (fixed figure size and dpi, no timestamps, no PNG software tag):
rendering a run twice gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib import style as mpl_style

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
from simulator.plots import PLOTS_DIR, plot_run
from simulator.report_format import (
    Figures,
    Series,
    figures,
    format_value,
    headline_metrics,
    label,
    md_table,
    money_format,
)
from simulator.report_offline import offline_section
from simulator.report_programmable import programmable_section

REPORT_MD = "report.md"

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
        "offline",
        "programmable",
        "velocity_during_stimulus",  # in the programmable section
        "velocity_after_stimulus",
    }
)


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size and seconds % size == 0 or seconds >= 3 * size:
            value = seconds / size
            return f"{value:g} {unit}" if value != 1 else f"1 {unit[:-1]}"
    return f"{seconds:g} s"


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
        plots, all_zero = plot_run(run_dir, series, timing, summary)

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
    offline = offline_section(summary)
    if offline:
        parts += ["## Offline payments", "", offline, ""]
    programmable = programmable_section(summary)
    if programmable:
        parts += ["## Programmable money", "", programmable, ""]
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
