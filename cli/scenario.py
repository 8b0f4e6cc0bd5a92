"""`cbdc scenario ...`: run a researcher's scenario file, list runs, compare two runs.

The engine, the report and matplotlib are imported inside the commands, so `cbdc --help` and
the other commands stay quick."""

from __future__ import annotations

import functools
import tomllib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.console import console, fitting_table

if TYPE_CHECKING:
    from simulator.outputs import RunInfo

scenario_app = typer.Typer(
    no_args_is_help=True,
    help="Researchers' scenarios: run a scenario file, list runs, compare two runs.",
)

RunsDir = Annotated[
    Path | None,
    typer.Option(
        "--runs-dir",
        help="where run folders live (default $CBDC_RUNS_DIR, else ./runs)",
        show_default=False,
    ),
]
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "scenarios"


def _error(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error[/]: [red]{escape(message)}[/]")
    return typer.Exit(code)


def _number(value: Any, fmt: str = ",") -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return format(value, fmt)


@scenario_app.command("run")
def run(
    file: Annotated[Path, typer.Argument(help="scenario file (TOML)", show_default=False)],
    runs_dir: RunsDir = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="PostgreSQL server URL (default: $CBDC_DATABASE_URL, else embedded)",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="no progress bar; print the run folder")
    ] = False,
    full_checks: Annotated[
        bool,
        typer.Option(
            "--full-checks",
            help="scan every posting at every step (default: at the end; every step checks "
            "balances and token registers)",
        ),
    ] = False,
    baseline: Annotated[
        bool,
        typer.Option(
            "--baseline",
            help="after the run, measure raw PostgreSQL doing the same writes (a SQL function "
            "per batch) and record the ratio",
        ),
    ] = False,
) -> None:
    """Run a scenario: write the run folder (series, timing, summary) and its report."""
    from simulator.outputs import read_summary, runs_root
    from simulator.scenario_loading import ScenarioError

    if not file.is_file():
        raise _error(f"no scenario file {file}")
    # The engine wires its services with Starlette's in-process test transport, and the
    # embedded server's wheel asks for a runtime dir: neither warning is the user's business.
    warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from simulator.run import run_scenario  # its own block: sorts the same once it exists

    root = runs_root(runs_dir)
    engine = functools.partial(run_scenario, full_checks=full_checks, baseline=baseline)
    try:
        if quiet:
            run_dir = engine(file, runs_root=root, database_url=database_url, progress=None)
        else:
            run_dir = _run_with_progress(engine, file, root, database_url)
    except ScenarioError as exc:
        raise _error(str(exc)) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: a run folder without summary.json is incomplete")
        raise typer.Exit(130) from None

    from simulator.report import render_report

    try:
        report = render_report(run_dir)
    except Exception as exc:  # the run itself is safe on disk: say where, then fail
        console.print(f"run folder: {run_dir}")
        raise _error(f"the report could not be rendered: {exc}", 1) from None
    summary = read_summary(run_dir)
    ok = summary.get("invariants_ok")
    if quiet:
        print(run_dir)
        raise typer.Exit(1 if ok is False else 0)
    verdict = (
        "[bold green]all invariants hold[/]"
        if ok is True
        else "[bold red]INVARIANT VIOLATED[/]"
        if ok is False
        else "[yellow]invariants not checked[/]"
    )
    console.print(f"run folder   {run_dir}")
    console.print(
        f"payments     {_number(summary.get('payments_total'))} "
        f"({_number(summary.get('payments_ok'))} ok, "
        f"{_number(summary.get('payments_failed'))} failed)"
    )
    console.print(f"throughput   {_number(summary.get('payments_per_second'), ',.1f')} payments/s")
    if isinstance(summary.get("baseline"), dict):
        console.print(
            f"baseline     {_number(summary['baseline'].get('payments_per_second'), ',.1f')} "
            f"payments/s raw PostgreSQL (ratio {_number(summary.get('ratio_to_baseline'), '.2f')})"
        )
    console.print(f"invariants   {verdict}")
    console.print(f"report       {report}")
    if ok is False:
        raise typer.Exit(1)


def _run_with_progress(run_scenario: Any, file: Path, root: Path, database_url: str | None) -> Path:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TextColumn("{task.fields[pps]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(file.stem, total=None, pps="")

        def report(done: int, total: int, info: dict[str, Any]) -> None:
            pps = info.get("payments_per_second") if info else None
            text = f"{pps:,.0f} payments/s" if isinstance(pps, int | float) else ""
            progress.update(task, completed=done, total=total, pps=text)

        return run_scenario(file, runs_root=root, database_url=database_url, progress=report)


@scenario_app.command("report")
def report(
    run: Annotated[str, typer.Argument(help="run folder, or its name in the runs dir")],
    runs_dir: RunsDir = None,
) -> None:
    """Render a run's plots and report.md again (from its files only)."""
    from simulator.outputs import runs_root
    from simulator.report import render_report

    run_dir = _resolve(run, runs_root(runs_dir))
    console.print(f"report: {render_report(run_dir)}")


def _resolve(ref: str, root: Path) -> Path:
    from simulator.outputs import resolve_run

    try:
        return resolve_run(ref, root)
    except FileNotFoundError as exc:
        raise _error(str(exc)) from None


def _examples(directory: Path | None) -> list[tuple[str, str, str]]:
    """(file, name, question) for each scenarios/*.toml, read with tomllib only."""
    candidates = [directory] if directory else [Path("scenarios"), EXAMPLES_DIR]
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*.toml")):
            break
    else:
        return []
    rows = []
    for path in sorted(folder.glob("*.toml")):
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8")).get("scenario", {})
            name = str(table.get("name", path.stem))
            question = str(table.get("question", ""))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            name, question = path.stem, f"[red]unreadable: {escape(str(exc))}[/]"
        else:
            name, question = escape(name), escape(question)
        rows.append((str(path), name, question))
    return rows


@scenario_app.command("list")
def list_(
    runs_dir: RunsDir = None,
    scenarios_dir: Annotated[
        Path | None,
        typer.Option(
            "--scenarios-dir",
            help="example scenarios (default ./scenarios, else the project's)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """List runs, newest first, and the example scenarios."""
    from simulator.outputs import list_runs, runs_root

    root = runs_root(runs_dir)
    runs = list_runs(root)
    if runs:
        console.print(runs_table(runs, root))
    else:
        console.print(f"No runs in {root}.")
    examples = _examples(scenarios_dir)
    if examples:
        console.print(
            fitting_table(
                ("file", "name", "question"),
                [(escape(row[0]), row[1], row[2]) for row in examples],
                title="Example scenarios (cbdc scenario run FILE)",
            )
        )


@scenario_app.command("compare")
def compare(
    run_a: Annotated[str, typer.Argument(help="run A: folder, or its name in the runs dir")],
    run_b: Annotated[str, typer.Argument(help="run B: folder, or its name in the runs dir")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="output folder (default compare-<A>-vs-<B> beside run A)",
            show_default=False,
        ),
    ] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Compare two runs: end-of-run, total and peak figures, overlaid plots, compare.md."""
    from simulator.compare import ComparisonError, compare_runs
    from simulator.outputs import runs_root

    root = runs_root(runs_dir)
    a = _resolve(run_a, root)
    b = _resolve(run_b, root)
    try:
        result = compare_runs(a, b, out)
    except ComparisonError as exc:
        raise _error(str(exc)) from None
    figures = ("A", "B", "B − A", "%")
    table = fitting_table(
        ("figure", *figures),
        [tuple(escape(cell) for cell in row) for row in result.table_rows()],
        title=f"A = {escape(result.name_a)}\nB = {escape(result.name_b)}",
        right=figures,
        whole=figures,
    )
    console.print(table)
    console.print(f"plots:   {result.out_dir / 'plots'}")
    console.print(f"report:  {result.report}")


def runs_table(runs: list[RunInfo], root: Path, width: int | None = None) -> Table:
    """`cbdc scenario list`: the runs, newest first."""
    rows = []
    for info in runs:
        summary, started, ok = info.summary, info.started, info.summary.get("invariants_ok")
        rows.append(
            (
                escape(info.name),
                started.strftime("%Y-%m-%d %H:%M:%S") if started else "—",
                _number(summary.get("steps")),
                _number(summary.get("payments_total")),
                _number(summary.get("payments_per_second"), ",.1f"),
                "[dim]incomplete[/]"
                if not info.complete
                else "[green]ok[/]"
                if ok is True
                else "[bold red]VIOLATED[/]"
                if ok is False
                else "—",
                escape(str(info.path)),
            )
        )
    numbers = ("steps", "payments", "payments/s")
    return fitting_table(
        ("run", "started", *numbers, "invariants", "path"),
        rows,
        title=f"Runs in {escape(str(root))}",
        right=numbers,
        center=("invariants",),
        whole=numbers,
        width=width,
    )
