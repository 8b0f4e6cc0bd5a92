"""Rich rendering shared by the CLI commands."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from cbdc.money import format_amount

console = Console(highlight=False)


def money(minor: int | None, decimals: int = 2, currency: str = "") -> str:
    if minor is None:
        return "unlimited"
    return format_amount(minor, decimals, currency)


def audit_table(report: dict[str, Any], decimals: int = 2) -> Table:
    table = Table(title="Cross-tier audit", show_lines=False)
    table.add_column("check")
    table.add_column("left", justify="right")
    table.add_column("right", justify="right")
    table.add_column("", justify="center")
    for check in report["checks"]:
        table.add_row(
            check["name"],
            f"{check['left']:,}",
            f"{check['right']:,}",
            "[green]ok[/]" if check["ok"] else "[bold red]VIOLATED[/]",
        )
    return table


def fail(exc: Exception) -> NoReturn:
    """End a CLI command on a refusal (4xx, with its stable code) or an unreachable service."""
    from cbdc.http import RemoteError

    if isinstance(exc, RemoteError):
        console.print(f"[bold red]refused[/] [red]{exc.code}[/]: {exc.detail}")
    else:
        console.print(f"[bold red]failed[/]: {exc}")
    raise typer.Exit(1)
