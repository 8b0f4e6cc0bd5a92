"""The run folder: what a scenario run leaves behind, written and read back.

A run folder `<runs root>/<name>-<YYYYmmdd-HHMMSS>/` holds

- `scenario.toml`   the exact scenario source the run was made from;
- `series.csv`      one row per simulated step (reproducible: same scenario + seed, same file);
- `series.parquet`  the same table, when pyarrow is installed (the optional `parquet` extra);
- `timing.csv`      wall-clock figures per step (not reproducible, hence kept apart);
- `summary.json`    run-level figures (indent 2, sorted keys). Written last: a folder without
                    it is an interrupted run.

Every file is written to a temporary name and renamed into place, so an interrupted run never
leaves a truncated CSV that looks complete.

Series columns: `step`, `time_s`, totals such as `deposits`, `failed.<reason>` for each failure
reason, and `<metric>.<OPCODE>` per operator. Amounts are integer minor units; `summary.json`
carries `decimals` and `currency` for display. Stock metrics are levels at the end of a step;
flow metrics are per-step values (not cumulative).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_RUNS_ROOT = Path("runs")
RUNS_DIR_ENV = "CBDC_RUNS_DIR"

SERIES_CSV = "series.csv"
SERIES_PARQUET = "series.parquet"
TIMING_CSV = "timing.csv"
SUMMARY_JSON = "summary.json"
SCENARIO_TOML = "scenario.toml"

# Levels at the end of a step (the end-of-run value is the last row).
STOCK_METRICS = (
    "cbdc_outstanding",
    "household_cash",
    "deposits",
    "reserves",
    "vault_float",
    "wallet_balances",
    "cash_on_hand",
    "wallets_adopted",
    # offline use (simulator/offline_metrics.py)
    "purse_balances",
    "fraud_losses",
    "devices",
    "devices_revoked",
    # programmable money (simulator/programmable_metrics.py); velocity is a ratio per step
    "voucher_outstanding",
    "escrow_locked",
    "money_held",
    "velocity",
)
# Per-step values (the run figure is the sum over the steps).
FLOW_METRICS = (
    "gross_settlement",
    "net_settlement",
    "liquidity_need",
    "liquidity_shortfall",
    "payments_ok",
    "payments_failed",
    "limit_hits",
    "aml_alerts",
    "offline_payments",
    "offline_value",
    "double_spend_attempts",
    "offline_syncs",
    "double_spends_detected",
    "detection_delay_s",
    "stimulus_paid",
    "voucher_spending",
    "expiry_returns",
    "payments_value",
    "escrows_opened",
    "escrows_released",
    "escrows_refunded",
)
# Metrics in integer minor units of the currency (the rest are counts).
AMOUNT_METRICS = frozenset(
    {
        "cbdc_outstanding",
        "household_cash",
        "deposits",
        "reserves",
        "vault_float",
        "wallet_balances",
        "cash_on_hand",
        "gross_settlement",
        "net_settlement",
        "liquidity_need",
        "liquidity_shortfall",
        "offline_value",
        "purse_balances",
        "fraud_losses",
        "stimulus_paid",
        "voucher_spending",
        "voucher_outstanding",
        "expiry_returns",
        "payments_value",
        "money_held",
        "escrows_released",
        "escrows_refunded",
        "escrow_locked",
    }
)
FAILED_PREFIX = "failed."
AXIS_COLUMNS = ("step", "time_s")

_OPERATOR_CODE = re.compile(r"^[A-Z0-9]{4}$")
_RUN_STAMP = re.compile(r"-(\d{8}-\d{6})(?:-\d+)?$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

Row = dict[str, int | float]


# ------------------------------------------------------------------ where runs go


def runs_root(explicit: Path | None = None) -> Path:
    """The runs root: `explicit` if given, else $CBDC_RUNS_DIR, else `runs/` (current dir)."""
    if explicit is not None:
        return explicit
    env = os.environ.get(RUNS_DIR_ENV, "").strip()
    return Path(env) if env else DEFAULT_RUNS_ROOT


def slug(name: str) -> str:
    """A folder-safe version of a scenario name ("Cash run 2" -> "Cash-run-2")."""
    return _UNSAFE.sub("-", name).strip("-.") or "run"


def new_run_dir(root: Path, name: str, now: datetime) -> Path:
    """Create and return `root/<name>-<YYYYmmdd-HHMMSS>`, with `-2`, `-3`, ... appended when
    that folder exists already (created here, so two runs started in the same second cannot
    both take the same folder)."""
    root.mkdir(parents=True, exist_ok=True)
    base = f"{slug(name)}-{now:%Y%m%d-%H%M%S}"
    attempt = 1
    while True:
        candidate = root / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            attempt += 1
            continue
        return candidate


# ------------------------------------------------------------------ writing


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary sibling of `path`, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)

    _atomic_write(path, write)


def _cell(value: Any, column: str, index: int, what: str) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    raise TypeError(f"{what} row {index}, column {column!r}: {value!r} is not an int or float")


def _columns(rows: Sequence[Mapping[str, Any]], what: str) -> list[str]:
    if not rows:
        return []
    columns = list(rows[0])
    expected = set(columns)
    for index, row in enumerate(rows):
        if set(row) != expected:
            missing = sorted(expected - set(row))
            extra = sorted(set(row) - expected)
            raise ValueError(
                f"{what} row {index} has different columns from row 0 "
                f"(missing {missing}, extra {extra})"
            )
    return columns


def _csv_text(rows: Sequence[Mapping[str, Any]], what: str) -> str:
    columns = _columns(rows, what)
    if not columns:
        return ""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for index, row in enumerate(rows):
        writer.writerow([_cell(row[column], column, index, what) for column in columns])
    return out.getvalue()


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def _write_parquet(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = _columns(rows, "series")
    table = pa.table({column: [row[column] for row in rows] for column in columns})
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def write_run(
    run_dir: Path,
    *,
    series: list[dict[str, int | float]],
    timing: list[dict[str, float]],
    summary: dict[str, Any],
    scenario_text: str,
) -> None:
    """Write a run's files into `run_dir` (created if needed). `summary.json` comes last and
    gets `"parquet": true|false` (whether `series.parquet` was written). Raises ValueError if
    rows disagree on their columns, TypeError on a value that is not an int or float."""
    series_text = _csv_text(series, "series")  # validate everything before writing anything
    timing_text = _csv_text(timing, "timing")
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_text(run_dir / SCENARIO_TOML, scenario_text)
    _write_text(run_dir / SERIES_CSV, series_text)
    with_parquet = parquet_available() and bool(series)
    if with_parquet:
        _write_parquet(run_dir / SERIES_PARQUET, series)
    _write_text(run_dir / TIMING_CSV, timing_text)
    document = dict(summary)
    document["parquet"] = with_parquet
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    _write_text(run_dir / SUMMARY_JSON, text + "\n")


# ------------------------------------------------------------------ reading


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return math.nan


def _read_csv(path: Path) -> list[dict[str, int | float]]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as handle:
        return [
            {column: _number(value) for column, value in row.items()}
            for row in csv.DictReader(handle)
        ]


def read_series(run_dir: Path) -> list[dict[str, float]]:
    """The rows of `series.csv` (integers come back as int, so amounts stay exact)."""
    path = run_dir / SERIES_CSV
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} has no {SERIES_CSV}")
    return _read_csv(path)  # type: ignore[return-value]


def read_timing(run_dir: Path) -> list[dict[str, float]]:
    """The rows of `timing.csv` ([] if the run has none)."""
    return _read_csv(run_dir / TIMING_CSV)  # type: ignore[return-value]


def read_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SUMMARY_JSON
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a complete run folder (no {SUMMARY_JSON})")
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ columns


def operator_codes(summary: Mapping[str, Any]) -> list[str]:
    """The operator codes of a run (`summary["operators"]`: codes, or objects with "code")."""
    codes = []
    for item in summary.get("operators") or []:
        code = item.get("code") if isinstance(item, Mapping) else item
        if isinstance(code, str):
            codes.append(code)
    return codes


def split_column(column: str, operators: Iterable[str] | None = None) -> tuple[str, str | None]:
    """("deposits.BKA1") -> ("deposits", "BKA1"); ("failed.limit") -> ("failed.limit", None).
    A suffix is an operator code if it is one of `operators` (or, with no operator list, if it
    looks like one: four characters A-Z0-9)."""
    metric, dot, suffix = column.rpartition(".")
    if not dot:
        return column, None
    known = set(operators) if operators is not None else None
    is_code = suffix in known if known else bool(_OPERATOR_CODE.match(suffix))
    return (metric, suffix) if is_code else (column, None)


@dataclass(frozen=True)
class Columns:
    """The columns of a series, sorted into kinds."""

    totals: list[str]  # network-wide metrics, including failed.<reason>
    failures: list[str]  # failed.<reason> columns (network-wide)
    per_operator: dict[str, dict[str, str]]  # metric -> operator code -> column
    operators: list[str]

    def reason(self, column: str) -> str:
        return column[len(FAILED_PREFIX) :]


def classify_columns(columns: Iterable[str], summary: Mapping[str, Any]) -> Columns:
    known_codes = operator_codes(summary)
    codes = known_codes or None
    totals: list[str] = []
    per_operator: dict[str, dict[str, str]] = {}
    seen_codes: list[str] = list(known_codes)
    for column in columns:
        if column in AXIS_COLUMNS:
            continue
        metric, code = split_column(column, codes)
        if code is None:
            totals.append(column)
        else:
            per_operator.setdefault(metric, {})[code] = column
            if code not in seen_codes:
                seen_codes.append(code)
    failures = [c for c in totals if c.startswith(FAILED_PREFIX)]
    return Columns(totals, failures, per_operator, seen_codes)


def is_amount(metric: str, summary: Mapping[str, Any] | None = None) -> bool:
    """Whether a metric (without operator suffix) is in minor units. The engine can name more
    amount metrics in `summary["amount_metrics"]`."""
    extra = (summary or {}).get("amount_metrics") or []
    return metric in AMOUNT_METRICS or metric in extra


def is_flow(metric: str) -> bool:
    return metric in FLOW_METRICS or metric.startswith(FAILED_PREFIX)


# ------------------------------------------------------------------ finding runs


@dataclass(frozen=True)
class RunInfo:
    path: Path
    name: str  # the folder name
    complete: bool  # has summary.json
    summary: dict[str, Any]

    @property
    def started(self) -> datetime | None:
        text = self.summary.get("started_at")
        if isinstance(text, str):
            try:
                return datetime.fromisoformat(text)
            except ValueError:
                pass
        match = _RUN_STAMP.search(self.name)
        if match:
            return datetime.strptime(match.group(1), "%Y%m%d-%H%M%S")
        return None


def _sort_key(info: RunInfo) -> tuple[float, str]:
    started = info.started
    if started is None:
        return (0.0, info.name)
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return (started.timestamp(), info.name)


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / SUMMARY_JSON).exists() or (path / SCENARIO_TOML).exists())


def list_runs(root: Path) -> list[RunInfo]:
    """Run folders under `root`, newest first (interrupted ones included, `complete=False`)."""
    if not root.is_dir():
        return []
    runs = []
    for path in root.iterdir():
        if not is_run_dir(path):
            continue
        try:
            summary = read_summary(path)
            complete = True
        except (FileNotFoundError, ValueError):
            summary, complete = {}, False
        runs.append(RunInfo(path, path.name, complete, summary))
    return sorted(runs, key=_sort_key, reverse=True)


def resolve_run(ref: str | Path, root: Path) -> Path:
    """A run folder from a path, a folder name under `root`, or a scenario name (its newest
    complete run under `root`). FileNotFoundError if there is none."""
    ref_path = Path(ref)
    for candidate in (ref_path, root / ref_path):
        if candidate.is_dir():
            if not (candidate / SUMMARY_JSON).exists():
                raise FileNotFoundError(
                    f"{candidate} is not a complete run folder (no {SUMMARY_JSON})"
                )
            return candidate
    name = str(ref)
    for info in list_runs(root):
        if not info.complete:
            continue
        stem = _RUN_STAMP.sub("", info.name)
        if name in (stem, info.summary.get("name")):
            return info.path
    raise FileNotFoundError(f"no run folder {name!r} (looked for a path and in {root}/)")
