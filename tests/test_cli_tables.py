"""`cli.console.fitting_table`: a table never wider than the terminal, wallet ids and amounts
whole while they fit, long words folded (never cut with an ellipsis) when they cannot. No
database."""

from __future__ import annotations

from rich.console import Console

from cli.console import fitting_table

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
