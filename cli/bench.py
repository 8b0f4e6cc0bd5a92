"""`cbdc bench`: the one-command retail payments benchmark (see loadtest/bench.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli.console import console, fitting_table


def bench(
    duration: Annotated[float, typer.Option(help="seconds of Locust load")] = 60,
    users: Annotated[int, typer.Option(help="concurrent Locust users")] = 64,
    processes: Annotated[
        int, typer.Option(help="Locust processes (>1: master + forked workers)")
    ] = 1,
    operators: Annotated[int, typer.Option(help="operators in a fresh network")] = 2,
    workers: Annotated[int, typer.Option(help="uvicorn workers per service")] = 1,
    wallets: Annotated[int, typer.Option(help="wallets seeded per operator")] = 10_000,
    cross_share: Annotated[float, typer.Option(help="share of cross-operator payments")] = 0.2,
    large_share: Annotated[float, typer.Option(help="share of large payments")] = 0.05,
    merchant_weight: Annotated[
        int, typer.Option(help="merchant (reading) users per 10 paying users")
    ] = 1,
    settlement: Annotated[str, typer.Option(help="rtgs or net (fresh network)")] = "rtgs",
    baseline_seconds: Annotated[float, typer.Option(help="pgbench seconds per mode")] = 15,
    baseline_clients: Annotated[int, typer.Option(help="pgbench clients")] = 8,
    batch_orders: Annotated[
        int, typer.Option(help="signed orders per operator for the batch API phase (0: skip)")
    ] = 20_000,
    network_file: Annotated[
        Path | None, typer.Option(help="bench an existing network instead of a fresh one")
    ] = None,
    data_dir: Annotated[Path, typer.Option(help="data directory of the fresh network")] = Path(
        ".cbdc-bench"
    ),
    port: Annotated[int, typer.Option(help="central bank port of the fresh network")] = 18_700,
    out: Annotated[Path | None, typer.Option(help="run folder (default runs/bench/<time>)")] = None,
) -> None:
    """Seed wallets, measure raw PostgreSQL (pgbench) and then signed payments through the API
    with Locust; write bench.json and bench.md; audit the network afterwards (exit 1 if the
    audit fails)."""
    from loadtest.bench import BenchOptions, run_bench

    if settlement not in ("rtgs", "net"):
        console.print("[red]--settlement must be rtgs or net[/]")
        raise typer.Exit(2)
    options = BenchOptions(
        duration=duration,
        users=users,
        processes=processes,
        operators=operators,
        workers=workers,
        wallets=wallets,
        cross_share=cross_share,
        large_share=large_share,
        merchant_weight=merchant_weight,
        settlement_mode=settlement,
        baseline_seconds=baseline_seconds,
        baseline_clients=baseline_clients,
        batch_orders=batch_orders,
        network_file=network_file,
        data_dir=data_dir,
        port=port,
        out_dir=out,
    )
    result = run_bench(options, progress=lambda message: console.print(f"[dim]•[/] {message}"))
    console.print(_table(result))
    console.print(_cpu_table(result))
    console.print(f"bench.json and bench.md in {result['out_dir']}")
    if not result["audit"]["ok"]:
        console.print(f"[bold red]AUDIT FAILED[/]: {result['audit']['failed_checks']}")
        raise typer.Exit(1)
    console.print("[bold green]audit after the load: all invariants hold[/]")


def _table(result: dict, width: int | None = None) -> Table:
    api, base = result["api"], result["baseline"]["modes"]
    rows = [
        (
            "[bold]signed HTTP payments[/]",
            f"[bold]{api['payments_per_s']:,.0f}[/]",
            f"{api['payment_p50_ms']:.0f}",
            f"{api['payment_p95_ms']:.0f}",
            f"{api['payment_p99_ms']:.0f}",
            str(api["errors"]),
        )
    ]
    for name, row in sorted(api["requests"].items()):
        if name != "Aggregated":
            rows.append(
                (
                    f"  {escape(name)}",
                    f"{row['per_s']:,.0f}",
                    f"{row['p50_ms']:.0f}",
                    f"{row['p95_ms']:.0f}",
                    f"{row['p99_ms']:.0f}",
                    str(row["failures"]),
                )
            )
    batch = result.get("batch_api")
    if batch:
        rows.append(
            (
                f"signed batch API ({batch['batch']}/request)",
                f"{batch['payments_per_s']:,.0f}",
                f"{batch['request_ms']['p50']:.0f}/req",
                "",
                f"{batch['request_ms']['p99']:.0f}/req",
                "0",
            )
        )
    for mode in ("statements", "function", "batched"):
        if mode in base:
            row, lat = base[mode], base[mode]["latency_ms"]
            rows.append(
                (
                    f"pgbench {mode}",
                    f"{row['transfers_per_s']:,.0f}",
                    f"{lat['p50']:.1f}",
                    f"{lat['p95']:.1f}",
                    f"{lat['p99']:.1f}",
                    str(row.get("failed", 0)),
                )
            )
    figures = ("per s", "p50 ms", "p95 ms", "p99 ms", "errors")
    return fitting_table(
        ("measure", *figures),
        rows,
        title=f"cbdc bench ({result['seeding']['wallets']:,} wallets)",
        caption=(
            f"ratio to the SQL-function baseline: {result['ratio_to_function_baseline']}; CPU: "
            + ", ".join(f"{k} {v['cores']} cores" for k, v in result["cpu"].items())
        ),
        right=figures,
        whole=figures,
        width=width,
    )


def _cpu_table(result: dict, width: int | None = None) -> Table:
    from loadtest.cpureport import cpu_rows

    return fitting_table(
        ("measure", "ms", "of which (ms per payment)"),
        [(escape(what), ms, escape(detail)) for what, ms, detail in cpu_rows(result)],
        title="CPU per payment",
        right=("ms",),
        whole=("ms",),
        width=width,
    )
