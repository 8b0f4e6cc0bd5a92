"""`cbdc cash load|withdraw WALLET AMOUNT`: banknotes at the operator's counter, both ways.

A cash load is the operator's staff taking banknotes in and loading the wallet (`POST
/v1/admin/wallets/{id}/cash-load`, staff key). A cash withdrawal pays banknotes out of the
wallet: the holder signs a `cash_withdrawal` order (its consent, with the wallet's key from the
local key store) and staff submit it (`POST /v1/admin/wallets/{id}/cash-withdraw`). Both send an
Idempotency-Key (`cash load --idempotency-key K` resends a load safely after a lost answer; a
withdrawal's signed order pays out once whatever key it is sent with)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.crypto import SigningKey
from cbdc.envelope import operator_audience
from cbdc.http import RemoteError, RemoteUnavailable, SignedClient
from cbdc.settings import NetworkConfig
from cli.console import amount_of, console, fail, money, read_key
from wallets.keystore import KeyStore, StoredWallet
from wallets.orders import cash_withdrawal_order, sign_order

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="network data directory")]
WalletArg = Annotated[str, typer.Argument(help="a local wallet nickname, or a wallet id")]
AmountArg = Annotated[str, typer.Argument(help="in major units, e.g. 100 or 12.50")]
IdemOption = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key", help="resend a request whose answer was lost (default: a new one)"
    ),
]


def staff_client(network: NetworkConfig, code: str) -> SignedClient:
    """Requests signed with operator `code`'s staff key (`.cbdc/keys/operator_<code>.key`)."""
    node = network.operator(code)
    return SignedClient(
        httpx.Client(base_url=node.url, timeout=60),
        key=read_key(SigningKey.load, Path(node.key_file), f"the staff key of {code}"),
        key_id=f"operator:{code}",
        audience=operator_audience(code),
    )


def key_store(network: NetworkConfig) -> KeyStore:
    return KeyStore(Path(network.central_bank.key_file).parent.parent / "wallets")


def _operator_of(network: NetworkConfig, wallet_id: str) -> str:
    code = routing_code(wallet_id)
    if code not in {node.code for node in network.operators}:
        console.print(f"[red]wallet {wallet_id} belongs to no operator of this network[/]")
        raise typer.Exit(2)
    return code


def register(app: typer.Typer, load_network: Callable[[Path | None], NetworkConfig]) -> None:
    group = typer.Typer(
        no_args_is_help=True,
        help="Banknotes at the operator's counter: load a wallet with cash, withdraw cash.",
    )
    app.add_typer(group, name="cash")

    def show(network: NetworkConfig, minor: int) -> str:
        return money(minor, network.currency_decimals, network.currency)

    @group.command("load")
    def load(
        wallet: WalletArg,
        amount: AmountArg,
        idempotency_key: IdemOption = None,
        data_dir: DataDir = None,
    ) -> None:
        """(Staff) take banknotes in over the counter and load them into the wallet."""
        network = load_network(data_dir)
        stored: StoredWallet | None
        try:
            stored = key_store(network).get(wallet)
            wallet_id = stored.wallet_id
        except KeyError:
            if not is_valid_wallet_id(wallet):
                console.print(
                    f"[red]'{wallet}' is neither a local wallet nickname nor a wallet id[/] "
                    "(see `cbdc wallet list`)"
                )
                raise typer.Exit(2) from None
            stored, wallet_id = None, wallet
        minor = amount_of(amount, network.currency_decimals)
        staff = staff_client(network, _operator_of(network, wallet_id))
        try:
            result = staff.request(
                "POST",
                f"/v1/admin/wallets/{wallet_id}/cash-load",
                {"amount": minor},
                idempotency_key=idempotency_key or str(uuid.uuid4()),
            )
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
        label = f"{stored.name} ({wallet_id})" if stored and stored.name else wallet_id
        console.print(
            f"cash load: {show(network, minor)} in banknotes into {label}; "
            f"wallet {show(network, int(result['wallet_balance']))}{_replayed(result)}"
        )

    @group.command("withdraw")
    def withdraw(
        wallet: Annotated[str, typer.Argument(help="a wallet whose key is in the key store")],
        amount: AmountArg,
        data_dir: DataDir = None,
    ) -> None:
        """Pay banknotes out of the wallet at the counter: the wallet signs its consent (a
        `cash_withdrawal` order), the operator's staff submit it."""
        network = load_network(data_dir)
        try:
            stored = key_store(network).get(wallet)
        except KeyError:
            console.print(
                f"[red]no wallet '{wallet}' in the local key store[/]: a cash withdrawal needs "
                "the holder's key to sign its consent (see `cbdc wallet list`)"
            )
            raise typer.Exit(2) from None
        minor = amount_of(amount, network.currency_decimals)
        order = cash_withdrawal_order(
            wallet=stored.wallet_id, amount=minor, currency=network.currency
        )
        staff = staff_client(network, _operator_of(network, stored.wallet_id))
        try:
            result = staff.request(
                "POST",
                f"/v1/admin/wallets/{stored.wallet_id}/cash-withdraw",
                sign_order(stored.key, order),
                idempotency_key=str(uuid.uuid4()),  # the signed order pays out once anyway
            )
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
        console.print(
            f"cash withdrawal: {show(network, int(result['amount']))} paid out in banknotes "
            f"from {stored.name or stored.wallet_id} ({stored.wallet_id}); "
            f"wallet {show(network, int(result['wallet_balance']))}{_replayed(result)}"
        )


def _replayed(result: dict[str, Any]) -> str:
    return " (already done: the first answer)" if result.get("replayed") else ""
