"""Rich rendering shared by the CLI commands: money in major units, tables that fit the
terminal (`fitting_table`), the audit table, and how a refusal ends a command."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.cells import cell_len
from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cbdc.money import format_amount, parse_amount

console = Console(highlight=False)
_Key = TypeVar("_Key")


def money(minor: int | None, decimals: int = 2, currency: str = "") -> str:
    if minor is None:
        return "unlimited"
    return format_amount(minor, decimals, currency)


def amount_of(text: str, decimals: int) -> int:
    """AMOUNT typed by a person ("1,234.56") in minor units, or a one-line error (exit 2)."""
    try:
        return parse_amount(text, decimals)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


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

    # Tried in turn: the `whole` columns on one line (an amount with its currency), then with
    # their words whole; the other columns with no word split, then as narrow as their
    # header's widest word, then 6. None fits: Rich folds every column.
    header_words = [_widths([h])[1] for h in headers]

    def floor_of(whole_line: bool, others: str) -> list[int]:
        return [
            (line if whole_line else word)
            if h in whole
            else word
            if others == "words"
            else min(line, max(6, header_word) if others == "header" else 6)
            for h, (line, word), header_word in zip(headers, measured, header_words, strict=True)
        ]

    floors = [
        floor_of(line, others) for others in ("words", "header", "6") for line in (True, False)
    ]
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
    "what the escrows hold",
    "what the vouchers hold",
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


def read_key(load: Callable[[Path], _Key], path: Path, what: str) -> _Key:
    """`load(path)`: the key (file or directory) the command signs with, or one line saying
    why it cannot be read, exit 2 (a data directory copied without its keys, a key file
    deleted or damaged), never a traceback."""
    try:
        return load(path)
    except (OSError, ValueError, TypeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        console.print(
            f"[red]cannot read {what} at {escape(str(path))}: {escape(reason)}[/]",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(2) from None
