"""`cli.console.fitting_table`: a table never wider than the terminal, wallet ids and amounts
whole while they fit, long words folded (never cut with an ellipsis) when they cannot; and the
CLI's tables built with it (regulator, offline, network, scenario runs, bench). No database."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from rich.console import Console
from rich.table import Table

from cbdc.settings import NetworkConfig
from cli.bench import _cpu_table as bench_cpu_table
from cli.bench import _table as bench_table
from cli.console import fitting_table, money
from cli.main import network_table
from cli.offline_render import devices_table
from cli.regulator import alerts_table, log_table
from cli.scenario import runs_table
from simulator.outputs import RunInfo

ROWS = [
    ("2026-12-06 10:11:12", "cash withdrawal", "-1,234,567.89 CNY", "BKB13081471661799177", "ok"),
    ("2026-12-06 10:11:12", "payment out", "-12.00 CNY", "BKA10000000000000042", "completed"),
]
HEADERS = ("at", "kind", "amount", "counterparty", "status")


def render(width: int) -> list[str]:
    table = fitting_table(
        HEADERS, ROWS, right=("amount",), whole=("amount", "counterparty"), width=width
    )
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text().splitlines()


def test_fits_and_keeps_ids_and_amounts_whole_at_80_columns() -> None:
    lines = render(80)
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    text = "\n".join(lines)
    for whole in ("BKB13081471661799177", "BKA10000000000000042", "-1,234,567.89", "-12.00 CNY"):
        assert whole in text, text
    assert "…" not in text


def test_wide_terminal_keeps_every_row_on_one_line() -> None:
    lines = render(200)
    assert any("2026-12-06 10:11:12" in line and "BKB13081471661799177" in line for line in lines)


def test_too_narrow_folds_instead_of_cutting() -> None:
    text = "\n".join(render(40))
    assert "…" not in text
    assert "BKB13" in text and "99177" in text  # folded across lines, nothing cut


# ------------------------------------------------ every table a person reads, at 80 columns


def text_of(table: Table, width: int = 80) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    text = console.export_text()
    assert all(len(line) <= width for line in text.splitlines()), text
    assert "…" not in text, text
    return text


WALLET = "BKA1" + "7" * 16


def test_regulator_alerts_in_major_units_with_the_currency() -> None:
    alerts = [
        {
            "occurred_at": "2026-12-06T10:11:12.123456+00:00",
            "operator": "BKA1",
            "wallet": WALLET,
            "rule": "structuring_just_below_threshold",
            "amount": 4_999_999_00,
        }
    ]
    text = text_of(alerts_table(alerts, 2, "CNY"))
    assert WALLET in text and "4,999,999.00 CNY" in text and "10:11:12" in text


def test_regulator_log_keeps_wallet_ids_whole_and_shows_markup_as_typed() -> None:
    order = {"wallet_id": WALLET, "legal_basis": "Art. 28 [AML] Law; " * 4, "requester": "FIU"}
    rows = [{"seq": 12, "created_at": "2026-12-06T10:11:12+00:00", "entry": {"order": order}}]
    text = text_of(log_table("BKA1", rows))
    assert WALLET in text and "[AML]" in text and "Disclosure log of BKA1" in text


def test_offline_devices_list() -> None:
    rows: list[dict[str, Any]] = [
        {
            "name": "alice-phone",
            "device": "BKA1D0123456789ABCDE",
            "wallet": WALLET,
            "purse": 1_234_567_89,
            "counter": 3,
            "unsynced_sent": 2,
            "unsynced_received": 0,
            "certificate": "active",
        },
        {"name": "broken", "error": "JSONDecodeError: Expecting value [line 1]"},
    ]
    text = text_of(devices_table(rows, lambda minor: money(minor, 2, "CNY")))
    assert WALLET in text and "1,234,567.89 CNY" in text and "damaged" in text and "[line" in text


def test_network_urls_whole() -> None:
    operator = {
        "code": "BKA1",
        "name": "Bank A of the People, Commercial and Savings",
        "url": "http://127.0.0.1:18701",
        "port": 18701,
    }
    config = SimpleNamespace(
        central_bank=SimpleNamespace(url="http://127.0.0.1:18700"),
        operators=[SimpleNamespace(**operator)],
    )
    text = text_of(network_table(cast(NetworkConfig, config)))
    assert "http://127.0.0.1:18701/docs" in text and "http://127.0.0.1:18700/docs" in text


def test_scenario_runs(tmp_path: Path) -> None:
    summary = {"steps": 1440, "payments_total": 1_234_567, "payments_per_second": 4_125.5}
    run = RunInfo(
        tmp_path / ("a-long-scenario-name-" * 3 + "20260101-000000"),
        "a-long-scenario-name-" * 3 + "20260101-000000",
        True,
        {**summary, "invariants_ok": True, "started_at": "2026-01-01T00:00:00"},
    )
    text = text_of(runs_table([run], tmp_path))
    assert "1,234,567" in text and "4,125.5" in text and "00:00:00" in text


def test_bench_tables() -> None:
    timing = {"per_s": 1234.5, "p50_ms": 3, "p95_ms": 9, "p99_ms": 20, "failures": 0}
    result = {
        "seeding": {"wallets": 10_000},
        "api": {
            "payments_per_s": 2345.6,
            "payment_p50_ms": 4,
            "payment_p95_ms": 10,
            "payment_p99_ms": 30,
            "errors": 0,
            "requests": {"POST /v1/payments (cross-operator, large)": timing},
        },
        "baseline": {
            "modes": {
                "function": {
                    "transfers_per_s": 9876.4,
                    "latency_ms": {"p50": 0.8, "p95": 1.5, "p99": 3.2},
                }
            }
        },
        "ratio_to_function_baseline": 0.24,
        "cpu": {"services": {"cores": 1}, "database": {"cores": 1}},
        "cpu_ms_per_payment": {},
        "batch_api": {
            "batch": 100,
            "payments_per_s": 12_345.6,
            "request_ms": {"p50": 40, "p99": 90},
            "cpu_ms_per_payment": {
                "services": 0.1,
                "database": 0.2,
                "load_generator": 0.05,
                "services_by_process": {f"operator BKA{i} worker {i}": 0.01 for i in range(6)},
            },
        },
    }
    text = text_of(bench_table(result))
    assert "2,346" in text and "9,876" in text and "12,346" in text
    assert "cross-operator" in text
    assert "BKA5 worker 5" in text_of(bench_cpu_table(result))
