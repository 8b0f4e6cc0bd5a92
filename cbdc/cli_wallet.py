"""`cbdc wallet ...`: a wallet holder's commands. Keys live in <data_dir>/wallets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cbdc.console import console, money
from cbdc.crypto import SigningKey
from cbdc.http import RemoteError, RemoteUnavailable
from cbdc.money import parse_amount
from cbdc.settings import NetworkConfig
from wallets.client import OperatorClient, WalletClient
from wallets.keystore import KeyStore, StoredWallet

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="network data directory")]


def register(group: typer.Typer, load_network: Callable[[Path | None], NetworkConfig]) -> None:
    def store(data_dir: Path | None) -> tuple[NetworkConfig, KeyStore]:
        network = load_network(data_dir)
        base = Path(network.central_bank.key_file).parent.parent
        return network, KeyStore(base / "wallets")

    def client_for(network: NetworkConfig, stored: StoredWallet) -> WalletClient:
        operator = OperatorClient.connect(network.operator(stored.operator).url)
        return operator.wallet(stored.wallet_id, stored.key)

    def fail(exc: Exception) -> None:
        if isinstance(exc, RemoteError):
            console.print(f"[bold red]refused[/] [red]{exc.code}[/]: {exc.detail}")
        else:
            console.print(f"[bold red]unavailable[/]: {exc}")
        raise typer.Exit(1)

    def resolve(keys: KeyStore, name: str) -> StoredWallet:
        try:
            return keys.get(name)
        except KeyError as exc:
            console.print(f"[red]{exc.args[0]}[/] (see `cbdc wallet list`)")
            raise typer.Exit(2) from None

    @group.command("create")
    def create(
        name: Annotated[str, typer.Argument(help="a nickname for this wallet, e.g. alice")],
        operator: Annotated[str, typer.Option(help="routing code of the operator")] = "BKA1",
        wallet_class: Annotated[str, typer.Option("--class", help="I, II, III or IV")] = "IV",
        phone: Annotated[str | None, typer.Option(help="phone number (class IV)")] = None,
        id_number: Annotated[str | None, typer.Option(help="ID number (classes I-III)")] = None,
        data_dir: DataDir = None,
    ) -> None:
        """Generate a key and open a wallet. Class IV is self-service on a phone number; other
        classes are opened 'at the counter' with the operator's staff key."""
        network, keys = store(data_dir)
        try:
            node = network.operator(operator)
        except KeyError:
            console.print(f"[red]no operator {operator}[/]")
            raise typer.Exit(2) from None
        op = OperatorClient.connect(node.url)
        staff = SigningKey.load(Path(node.key_file)) if wallet_class != "IV" else None
        try:
            wallet = op.open_wallet(
                display_name=name,
                phone=phone or ("+86138" + f"{abs(hash(name)) % 10**8:08d}"),
                id_number=id_number or (None if wallet_class == "IV" else "ID-" + name),
                wallet_class=wallet_class,
                staff_key=staff,
            )
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
            return
        keys.save(
            StoredWallet(
                wallet_id=wallet.wallet_id,
                operator=operator,
                operator_url=node.url,
                private_key=wallet.key.private_bytes(),
                public_key=wallet.key.public_key,
                wallet_class=wallet_class,
                name=name,
                certificate=wallet.opened.certificate if wallet.opened else None,
            )
        )
        console.print(
            f"opened class {wallet_class} wallet [bold]{wallet.wallet_id}[/] "
            f"at {operator} as '{name}'"
        )

    @group.command("list")
    def list_wallets(data_dir: DataDir = None) -> None:
        """Wallets whose keys are in the local key store."""
        _, keys = store(data_dir)
        table = Table()
        for column in ("name", "wallet id", "operator", "class"):
            table.add_column(column)
        for w in keys.all():
            table.add_row(w.name or "", w.wallet_id, w.operator, w.wallet_class)
        console.print(table)

    @group.command("balance")
    def balance(name: str, data_dir: DataDir = None) -> None:
        """Balance, class limits and what has been spent against them."""
        network, keys = store(data_dir)
        stored = resolve(keys, name)
        try:
            info = client_for(network, stored).balance()
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
            return
        d, c = network.currency_decimals, network.currency
        console.print(
            f"[bold]{stored.name}[/] {info.wallet_id}  class {info.wallet_class}  {info.status}"
        )
        console.print(f"  wallet balance   {money(info.balance, d, c)}")
        console.print(f"  linked deposit   {money(info.deposit_balance, d, c)}")
        console.print(f"  balance cap      {money(info.limits.balance_cap, d, c)}")
        console.print(f"  per payment      {money(info.limits.single_payment, d, c)}")
        console.print(
            f"  today            {money(info.spent_today, d, c)} of "
            f"{money(info.limits.daily, d, c)}"
        )

    def amount_arg(text: str, network: NetworkConfig) -> int:
        try:
            return parse_amount(text, network.currency_decimals)
        except ValueError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None

    @group.command("load")
    def load(name: str, amount: str, data_dir: DataDir = None) -> None:
        """Move money from the linked deposit account into the wallet (e.g. 100.00)."""
        network, keys = store(data_dir)
        stored = resolve(keys, name)
        try:
            result = client_for(network, stored).load(amount_arg(amount, network))
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
            return
        console.print(
            f"loaded; wallet {money(result.wallet_balance, network.currency_decimals)}"
            f", deposit {money(result.deposit_balance, network.currency_decimals)}"
        )

    @group.command("unload")
    def unload(name: str, amount: str, data_dir: DataDir = None) -> None:
        """Move money from the wallet back to the linked deposit account."""
        network, keys = store(data_dir)
        stored = resolve(keys, name)
        try:
            result = client_for(network, stored).unload(amount_arg(amount, network))
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
            return
        console.print(
            f"unloaded; wallet {money(result.wallet_balance, network.currency_decimals)}"
            f", deposit {money(result.deposit_balance, network.currency_decimals)}"
        )

    @group.command("deposit")
    def deposit(name: str, amount: str, data_dir: DataDir = None) -> None:
        """(Staff) credit the wallet holder's simulated bank deposit, e.g. a salary."""
        network, keys = store(data_dir)
        stored = resolve(keys, name)
        node = network.operator(stored.operator)
        info = client_for(network, stored).balance()
        import uuid

        from cbdc.http import SignedClient

        staff = SignedClient(
            OperatorClient.connect(node.url).http,
            key=SigningKey.load(Path(node.key_file)),
            key_id=f"operator:{node.code}",
        )
        try:
            result = staff.request(
                "POST",
                f"/v1/admin/customers/{info.customer_id}/deposit",
                {"amount": amount_arg(amount, network)},
                idempotency_key=str(uuid.uuid4()),
            )
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
            return
        console.print(
            f"deposit balance {money(result['deposit_balance'], network.currency_decimals)}"
        )

    @group.command("pay")
    def pay(
        name: str,
        payee: Annotated[str, typer.Argument(help="payee wallet id, or a local nickname")],
        amount: str,
        memo: Annotated[str | None, typer.Option(help="note for the payee")] = None,
        data_dir: DataDir = None,
    ) -> None:
        """Sign and send a payment order."""
        network, keys = store(data_dir)
        stored = resolve(keys, name)
        try:
            payee_id = keys.get(payee).wallet_id
        except KeyError:
            payee_id = payee
        try:
            receipt = client_for(network, stored).pay(
                payee_id, amount_arg(amount, network), memo=memo
            )
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
            return
        console.print(
            f"payment {receipt.payment_id}: {receipt.route} "
            f"{money(receipt.amount, network.currency_decimals)} -> {receipt.payee} "
            f"[bold]{receipt.status}[/]"
        )

    @group.command("history")
    def history(name: str, limit: int = 20, data_dir: DataDir = None) -> None:
        """Recent movements of the wallet."""
        network, keys = store(data_dir)
        stored = resolve(keys, name)
        try:
            items = client_for(network, stored).history(limit=limit).items
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
            return
        table = Table(title=f"{stored.name} {stored.wallet_id}")
        for column in ("at", "kind", "amount", "counterparty", "status"):
            table.add_column(column, justify="right" if column == "amount" else "left")
        for item in items:
            table.add_row(
                item.at[:19],
                item.kind,
                money(item.amount, network.currency_decimals),
                item.counterparty or "",
                item.status,
            )
        console.print(table)
