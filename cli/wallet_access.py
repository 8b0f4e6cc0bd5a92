"""Local wallets in the CLI's programmable commands (`cbdc escrow`, `cbdc programme`,
`cbdc schedule`): a nickname's keys, its operator's client, and a remote call ended cleanly
on a refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from cbdc.addresses import is_valid_wallet_id
from cbdc.http import RemoteError, RemoteUnavailable
from cbdc.settings import NetworkConfig
from cli.console import console, fail
from wallets.client import OperatorClient, WalletClient
from wallets.keystore import KeyStore, StoredWallet

T = TypeVar("T")


def resolve(keys: KeyStore, name: str) -> StoredWallet:
    """The local wallet `name` (exit 2 without one)."""
    try:
        return keys.get(name)
    except KeyError as exc:
        console.print(f"[red]{exc.args[0]}[/] (see `cbdc wallet list`)")
        raise typer.Exit(2) from None


def wallet_id_of(keys: KeyStore, name: str) -> str:
    """A local nickname's wallet id, or `name` itself when it is a wallet id (exit 2 if not)."""
    try:
        return keys.get(name).wallet_id
    except KeyError:
        if not is_valid_wallet_id(name):
            console.print(f"[red]'{name}' is neither a local wallet nickname nor a wallet id[/]")
            raise typer.Exit(2) from None
        return name


def client_for(network: NetworkConfig, stored: StoredWallet) -> WalletClient:
    operator = OperatorClient.connect(network.operator(stored.operator).url)
    return operator.wallet(stored.wallet_id, stored.key)


def remote(call: Callable[[], T]) -> T:
    """`call()`'s answer; a refusal or an unreachable service ends the command (`fail`)."""
    try:
        return call()
    except (RemoteError, RemoteUnavailable) as exc:
        fail(exc)
