"""Rich rendering shared by the CLI commands: money in major units, tables that fit the
terminal (`fitting_table`), the audit table, and how a refusal ends a command."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any, NoReturn

import typer
from rich.cells import cell_len
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from cbdc.money import format_amount

console = Console(highlight=False)


def money(minor: int | None, decimals: int = 2, currency: str = "") -> str:
    if minor is None:
        return "unlimited"
    return format_amount(minor, decimals, currency)


def signed_money(minor: int, decimals: int = 2, currency: str = "") -> str:
    """An amount in or out: "+12.34 CNY" / "-12.34 CNY"."""
    return ("+" if minor > 0 else "") + format_amount(minor, decimals, currency)


def _widths(cells: list[str]) -> tuple[int, int]:
    """(widest line, widest word) of a column's plain cells."""
    lines = [line for cell in cells for line in cell.splitlines()] or [""]
    words = [word for line in lines for word in line.split()] or [""]
    return max(cell_len(line) for line in lines), max(cell_len(word) for word in words)


def fitting_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    title: str | None = None,
    right: Collection[str] = (),
    center: Collection[str] = (),
    whole: Collection[str] = (),
    width: int | None = None,
    **options: Any,
) -> Table:
    """A table as wide as the terminal at most (`width`, default the console's): cells wrap at
    spaces and fold words too long for their column; nothing is cut off with an ellipsis.
    The words of the `whole` columns (wallet ids, amounts) are never split while the terminal
    is wide enough for them: the other columns give way first. Cells may hold Rich markup."""
    body = [[str(cell) for cell in row] for row in rows]
    plain = [[Text.from_markup(cell).plain for cell in row] for row in body]
    measured = [_widths([h, *(row[i] for row in plain)]) for i, h in enumerate(headers)]
    natural = [line for line, _ in measured]
    room = (width or console.width) - (3 * len(headers) + 1)  # borders and padding
    caps: list[int | None] = [None] * len(headers)
    # No word split anywhere if that fits, else none in the `whole` columns; else Rich folds.
    floors = (
        [word for _, word in measured],
        [
            word if h in whole else min(line, 6)
            for h, (line, word) in zip(headers, measured, strict=True)
        ],
    )
    floor = next((f for f in floors if sum(f) <= room), None)
    if sum(natural) > room and floor is not None:
        cap = max(natural)
        while (
            cap > 1 and sum(max(f, min(n, cap)) for f, n in zip(floor, natural, strict=True)) > room
        ):
            cap -= 1
        caps = [
            max(f, min(n, cap)) if n > cap else None for f, n in zip(floor, natural, strict=True)
        ]
    table = Table(title=title, **options)
    for h, cap_width in zip(headers, caps, strict=True):
        justify: JustifyMethod = "right" if h in right else "center" if h in center else "left"
        table.add_column(h, justify=justify, overflow="fold", max_width=cap_width)
    for row in body:
        table.add_row(*row)
    return table


# Audit checks whose sides are amounts (the others count entries, accounts, jobs, anchors...)
_MONEY_CHECKS = (
    "tokens",
    "float",
    "in_transit",
    "in transit",
    "sum to zero",
    "net to zero",
    "reserves",
    "fraud_losses",
    "awaiting settlement",
    "settled obligations",
)


def _is_money(name: str) -> bool:
    return any(word in name for word in _MONEY_CHECKS) and "disclosure" not in name


def audit_table(report: dict[str, Any], decimals: int = 2, currency: str = "CNY") -> Table:
    """The audit's checks; amounts in major units with the currency, counts as numbers."""
    rows = []
    for check in report["checks"]:
        left, right = int(check["left"]), int(check["right"])
        if _is_money(check["name"]):
            shown = (money(left, decimals, currency), money(right, decimals, currency))
        else:
            shown = (f"{left:,}", f"{right:,}")
        rows.append(
            (check["name"], *shown, "[green]ok[/]" if check["ok"] else "[bold red]VIOLATED[/]")
        )
    return fitting_table(
        ("check", "left", "right", ""),
        rows,
        title="Cross-tier audit",
        right=("left", "right"),
        center=("",),
        whole=("left", "right", ""),
    )


def fail(exc: Exception) -> NoReturn:
    """End a CLI command on a refusal (4xx, with its stable code) or an unreachable service."""
    from cbdc.http import RemoteError

    if isinstance(exc, RemoteError):
        console.print(f"[bold red]refused[/] [red]{exc.code}[/]: {exc.detail}")
    else:
        console.print(f"[bold red]failed[/]: {exc}")
    raise typer.Exit(1)
