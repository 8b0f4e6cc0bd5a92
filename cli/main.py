"""The `cbdc` command: run a network, demo it, audit it, and use wallets from the shell."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cbdc.http import RemoteError, RemoteUnavailable
from cbdc.settings import NetworkConfig, Settings, network_file
from cli.console import audit_table, console, fitting_table, money
from cli.dashboard import login_link, print_login_link

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="A two-tier central bank digital currency simulator on PostgreSQL.",
)
wallet_app = typer.Typer(no_args_is_help=True, help="Customer wallets (keys kept locally).")
app.add_typer(wallet_app, name="wallet")
regulator_app = typer.Typer(
    no_args_is_help=True, help="The regulator: disclosure orders, AML alerts, disclosure logs."
)
app.add_typer(regulator_app, name="regulator")
offline_app = typer.Typer(
    no_args_is_help=True,
    help="Offline device wallets: pay device to device with no network, sync later.",
)
app.add_typer(offline_app, name="offline")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="network data directory (default .cbdc)")
]


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    settings = Settings()
    if data_dir is not None:
        settings.data_dir = data_dir
    for name, value in overrides.items():
        if value is not None:
            setattr(settings, name, value)
    return settings


def _network(data_dir: Path | None) -> NetworkConfig:
    settings = _settings(data_dir)
    path = network_file(settings.data_dir.resolve())
    if not path.exists():
        console.print(f"[red]No network at {path}.[/] Start one with [bold]cbdc up[/].")
        raise typer.Exit(2)
    return NetworkConfig.load(path)


def _print_network(config: NetworkConfig, login: dict[str, Any] | None = None) -> None:
    """The services, each operator's wallet page, and (`login`) the dashboard's login link."""
    console.print(network_table(config))
    for node in config.operators:  # whole lines: copied or clicked as they are
        console.print(f"Wallet page {node.code}: {node.url}/", soft_wrap=True, markup=False)
    if login is not None:
        print_login_link(login)


def network_table(config: NetworkConfig, width: int | None = None) -> Table:
    """The services and their URLs, each URL whole (copied or clicked as it is)."""
    rows = [("central bank", config.central_bank.url, f"{config.central_bank.url}/docs")]
    rows += [
        (f"operator {node.code} ({escape(node.name)})", node.url, f"{node.url}/docs")
        for node in config.operators
    ]
    return fitting_table(
        ("service", "URL", "API docs"),
        rows,
        title="CBDC network on 127.0.0.1",
        whole=("URL", "API docs"),
        width=width,
    )


@app.command()
def up(
    operators: Annotated[int | None, typer.Option(help="number of operators (default 2)")] = None,
    port: Annotated[int | None, typer.Option(help="central bank port; operators follow")] = None,
    workers: Annotated[int | None, typer.Option(help="uvicorn workers per service")] = None,
    fresh: Annotated[bool, typer.Option(help="wipe the data directory first")] = False,
    demo_deposits: Annotated[
        bool | None,
        typer.Option(help="wallets may credit their own deposit (web wallet; default on)"),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Start PostgreSQL, the central bank and the operators; Ctrl-C stops everything."""
    from orchestration.network import Network

    settings = _settings(
        data_dir, operators=operators, port=port, workers=workers, demo_deposits=demo_deposits
    )
    network = Network(settings)
    if fresh:
        network.reset()
    with console.status("starting PostgreSQL, migrating, starting services..."):
        try:
            network.prepare()
            config = network.start()
        except Exception:
            network.stop()
            raise
    try:
        login = login_link(config)
    except (RemoteError, RemoteUnavailable) as exc:  # the network runs; `cbdc dashboard` later
        console.print(f"[yellow]no dashboard login link: {exc}[/]", soft_wrap=True)
        login = None
    _print_network(config, login)
    console.print(f"network file: {network_file(network.data_dir)}   logs: {network.data_dir}/logs")
    console.print("Press [bold]Ctrl-C[/] to stop.")
    stopped = threading.Event()
    # Explicit handlers: a shell that starts us in the background sets SIGINT to "ignore".
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.5):
            for name, process in network.processes:
                if process.poll() is not None:
                    console.print(f"[red]{name} exited with {process.returncode}[/]")
                    stopped.set()
    except KeyboardInterrupt:
        pass
    finally:
        with console.status("stopping..."):
            network.stop()
        console.print("stopped.")


@app.command()
def demo(
    data_dir: DataDir = None,
    port: Annotated[int | None, typer.Option(help="central bank port")] = None,
) -> None:
    """Run the narrated end-to-end flow on a fresh network, finishing with the audit."""
    from cli.demo import run_demo

    settings = _settings(data_dir or Path(".cbdc/demo"), port=port)
    raise typer.Exit(run_demo(settings))


@app.command()
def audit(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    drain_timeout: Annotated[float, typer.Option(help="seconds to let money in flight land")] = 30,
    data_dir: DataDir = None,
) -> None:
    """Check the cross-tier invariants of a running network; exit 1 on any violation."""
    from orchestration.audit import run_audit

    config = _network(data_dir)
    report = run_audit(config, drain_timeout=drain_timeout)
    # the local offline devices' unsynced transfers: listed, not checked (no operator saw them)
    from cli.offline_render import local_devices_report, unsynced_table

    report["offline_devices"] = local_devices_report(config)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        console.print(audit_table(report, config.currency_decimals, config.currency))
        for code, held in report["operators"].items():  # counted in each operator's CBDC
            locked = money(held["escrows"], config.currency_decimals, config.currency)
            earmarked = money(held["vouchers"], config.currency_decimals, config.currency)
            console.print(
                f"{code}: {locked} locked in {held['escrows_open']:,} open escrows, "
                f"{earmarked} earmarked in vouchers ({held['programmes_active']:,} active "
                "programmes)",
                highlight=False,
            )
        if report["offline_devices"]:
            console.print(unsynced_table(report["offline_devices"], config))
        console.print(
            "[bold green]all invariants hold[/]"
            if report["ok"]
            else "[bold red]INVARIANT VIOLATED[/]"
        )
    raise typer.Exit(0 if report["ok"] else 1)


# ------------------------------------------------------------------ wallets

from cli import dashboard, offline, regulator, wallet  # noqa: E402  (register the sub-commands)

wallet.register(wallet_app, _network)
regulator.register(regulator_app, _network)
offline.register(offline_app, _network)
schedule_app = typer.Typer(no_args_is_help=True, help="Scheduled payments of a local wallet.")
app.add_typer(schedule_app, name="schedule")
from cli import schedule  # noqa: E402

schedule.register(schedule_app, _network)
escrow_app = typer.Typer(no_args_is_help=True, help="Escrow: value locked for a payee.")
app.add_typer(escrow_app, name="escrow")
from cli import escrow  # noqa: E402

escrow.register(escrow_app, _network)
programme_app = typer.Typer(no_args_is_help=True, help="Purpose-bound, expiring vouchers.")
app.add_typer(programme_app, name="programme")
merchant_app = typer.Typer(no_args_is_help=True, help="Merchant categories (the registry).")
app.add_typer(merchant_app, name="merchant")
from cli import merchant, programme  # noqa: E402

programme.register(programme_app, _network)
merchant.register(merchant_app, _network)
dashboard.register(app, _network)

from cli import cash, central_bank  # noqa: E402

cash.register(app, _network)
central_bank.register(app, _network)

from cli import api as api_command  # noqa: E402

api_command.register(app, _network)

from cli.scenario import scenario_app  # noqa: E402

app.add_typer(scenario_app, name="scenario")

from cli.bench import bench  # noqa: E402

app.command()(bench)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
