"""`cbdc merchant ...`: merchant categories (the central bank's registry).

    cbdc merchant set shop groceries        # staff of the wallet's operator; `none` removes it
    cbdc merchant show shop                 # as the registry has it

Categories: groceries, restaurants, transport, pharmacy, utilities, retail, general."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.http import RemoteError, RemoteUnavailable
from cbdc.settings import NetworkConfig
from cli.cash import key_store, staff_client
from cli.console import console, fail

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="network data directory")]


def _wallet_id(network: NetworkConfig, name: str) -> str:
    """The wallet id of a local nickname or a wallet id of an operator of this network."""
    try:
        wallet_id = key_store(network).get(name).wallet_id
    except KeyError:
        if not is_valid_wallet_id(name):
            console.print(f"[red]'{name}' is neither a local wallet nickname nor a wallet id[/]")
            raise typer.Exit(2) from None
        wallet_id = name
    if routing_code(wallet_id) not in {node.code for node in network.operators}:
        console.print(f"[red]wallet {wallet_id} belongs to no operator of this network[/]")
        raise typer.Exit(2)
    return wallet_id


def register(group: typer.Typer, load_network: Callable[[Path | None], NetworkConfig]) -> None:
    @group.command("set")
    def set_category(
        wallet: Annotated[str, typer.Argument(help="local nickname or wallet id")],
        category: Annotated[str, typer.Argument(help="a category, or `none` to remove it")],
        data_dir: DataDir = None,
    ) -> None:
        """Register WALLET's merchant category (with its operator's staff key)."""
        network = load_network(data_dir)
        wallet_id = _wallet_id(network, wallet)
        value = None if category.lower() == "none" else category
        try:
            answer = staff_client(network, routing_code(wallet_id)).request(
                "PUT", f"/v1/admin/wallets/{wallet_id}/merchant-category", {"category": value}
            )
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
        console.print(f"{answer['wallet_id']}: {answer['category'] or 'not a merchant'}")

    @group.command("show")
    def show(
        wallet: Annotated[str, typer.Argument(help="local nickname or wallet id")],
        data_dir: DataDir = None,
    ) -> None:
        """WALLET's merchant category (read through its operator from the registry)."""
        network = load_network(data_dir)
        wallet_id = _wallet_id(network, wallet)
        try:
            answer = staff_client(network, routing_code(wallet_id)).request(
                "GET", f"/v1/merchants/{wallet_id}"
            )
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
        console.print(f"{answer['wallet_id']}: {answer['category'] or 'not a merchant'}")
