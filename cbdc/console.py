"""Rich rendering shared by the CLI commands."""

from __future__ import annotations

from typing import Any

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
