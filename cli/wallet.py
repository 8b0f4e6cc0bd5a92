"""`cbdc wallet ...`: a wallet holder's commands. Keys live in <data_dir>/wallets."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from cbdc.addresses import is_valid_wallet_id
from cbdc.crypto import SigningKey
from cbdc.envelope import operator_audience
from cbdc.http import RemoteError, RemoteUnavailable, SignedClient
from cbdc.identity import make_bank_account, make_resident_id
from cbdc.settings import NetworkConfig
from cli import programme
from cli.cash import key_store
from cli.console import amount_of, console, fail, fitting_table, money, signed_money
from wallets.client import OperatorClient, WalletClient
from wallets.keystore import KeyStore, StoredWallet

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="network data directory")]


def shown(network: NetworkConfig, minor: int | None) -> str:
    """An amount as a person reads it: "1,234.56 CNY"."""
    return money(minor, network.currency_decimals, network.currency)


def _demo_evidence(
    name: str,
    wallet_class: str,
    phone: str | None,
    id_number: str | None,
    bank_account: str | None,
) -> dict[str, str]:
    """Evidence for `wallet_class`, generating well-formed demo values that were not given
    (derived from the name, so the same name gets the same identity)."""
    seed = int(hashlib.sha256(name.encode()).hexdigest(), 16)
    evidence = {"phone": phone or f"+86138{seed % 10**8:08d}"}
    needs_id = wallet_class.upper() in ("I", "II", "III")
    needs_account = wallet_class.upper() in ("I", "II")
    generated = []
    if needs_id:
        if not id_number:
            # birth date and sequence from the name: 40 years x 336 days x 1000 numbers, so
            # two demo names rarely share an ID number (one ID number is one holder)
            year, month, day = 1970 + seed % 40, 1 + (seed // 40) % 12, 1 + (seed // 480) % 28
            serial = (seed // 13_440) % 1000
            id_number = make_resident_id(f"110101{year}{month:02d}{day:02d}{serial:03d}")
            generated.append(f"ID number {id_number}")
        evidence["id_number"] = id_number
    if needs_account:
        if not bank_account:
            bank_account = make_bank_account(f"621700{seed % 10**9:09d}")
            generated.append(f"bank account {bank_account}")
        evidence["bank_account"] = bank_account
    if generated:
        console.print(f"[dim]demo evidence for {name}: {', '.join(generated)}[/]")
    return evidence


def register(group: typer.Typer, load_network: Callable[[Path | None], NetworkConfig]) -> None:
    def store(data_dir: Path | None) -> tuple[NetworkConfig, KeyStore]:
        network = load_network(data_dir)
        return network, key_store(network)

    def client_for(network: NetworkConfig, stored: StoredWallet) -> WalletClient:
        operator = OperatorClient.connect(network.operator(stored.operator).url)
        return operator.wallet(stored.wallet_id, stored.key)

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
        phone: Annotated[str | None, typer.Option(help="phone number")] = None,
        id_number: Annotated[str | None, typer.Option(help="resident ID number (I-III)")] = None,
        bank_account: Annotated[str | None, typer.Option(help="own bank account (I-II)")] = None,
        at_counter: Annotated[
            bool, typer.Option("--at-counter", help="opened by staff (required for class I)")
        ] = False,
        data_dir: DataDir = None,
    ) -> None:
        """Generate a key and open a wallet on the evidence its class needs. Evidence not
        given is generated (well-formed demo values) and printed. Class I, and --at-counter,
        are opened by the operator's staff."""
        network, keys = store(data_dir)
        if any(w.name == name for w in keys.all()):
            console.print(
                f"[red]a wallet nicknamed '{name}' is already here[/] "
                "(nicknames are unique per data directory; see `cbdc wallet list`)"
            )
            raise typer.Exit(2)
        try:
            node = network.operator(operator)
        except KeyError:
            console.print(f"[red]no operator {operator}[/]")
            raise typer.Exit(2) from None
        evidence = _demo_evidence(name, wallet_class, phone, id_number, bank_account)
        op = OperatorClient.connect(node.url)
        by_staff = at_counter or wallet_class.upper() == "I"
        staff = SigningKey.load(Path(node.key_file)) if by_staff else None
        try:
            wallet = op.open_wallet(
                display_name=name,
                wallet_class=wallet_class.upper(),
                staff_key=staff,
                phone=evidence.get("phone"),
                id_number=evidence.get("id_number"),
                bank_account=evidence.get("bank_account"),
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

    @group.command("upgrade")
    def upgrade(
        name: str,
        wallet_class: Annotated[str, typer.Option("--class", help="the new class, I-IV")],
        id_number: Annotated[str | None, typer.Option(help="resident ID number")] = None,
        bank_account: Annotated[str | None, typer.Option(help="own bank account")] = None,
        at_counter: Annotated[
            bool, typer.Option("--at-counter", help="done by staff (required for class I)")
        ] = False,
        data_dir: DataDir = None,
    ) -> None:
        """Change a wallet's class (upgrade with evidence, or downgrade); class I is done at
        the counter with the operator's staff key (--at-counter)."""
        network, keys = store(data_dir)
        stored = resolve(keys, name)
        new_class = wallet_class.upper()
        if new_class == "I" and not at_counter:
            console.print(
                "[red]class I needs identity verified in person:[/] "
                "add --at-counter (the operator's staff do it)"
            )
            raise typer.Exit(2)
        evidence = _demo_evidence(name, new_class, None, id_number, bank_account)
        evidence.pop("phone", None)
        wallet = client_for(network, stored)
        try:
            if new_class == "I":
                node = network.operator(stored.operator)
                staff = SignedClient(
                    OperatorClient.connect(node.url).http,
                    key=SigningKey.load(Path(node.key_file)),
                    key_id=f"operator:{node.code}",
                    audience=operator_audience(node.code),
                )
                body = {"wallet_class": new_class, "customer": evidence}
                data = staff.request("POST", f"/v1/wallets/{stored.wallet_id}/class", body)
                info_class, cap = data["wallet_class"], data["limits"]["balance_cap"]
            else:
                info = wallet.change_class(
                    new_class,
                    id_number=evidence.get("id_number"),
                    bank_account=evidence.get("bank_account"),
                )
                info_class, cap = info.wallet_class, info.limits.balance_cap
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
            return
        stored.wallet_class = info_class
        keys.save(stored)
        console.print(f"{name} is now class {info_class}; balance cap {shown(network, cap)}")

    @group.command("list")
    def list_wallets(data_dir: DataDir = None) -> None:
        """Wallets whose keys are in the local key store."""
        _, keys = store(data_dir)
        rows = [(w.name or "", w.wallet_id, w.operator, w.wallet_class) for w in keys.all()]
        console.print(
            fitting_table(("name", "wallet id", "operator", "class"), rows, whole=("wallet id",))
        )

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
        if info.locked:
            console.print(f"  locked (escrow)  {money(info.locked, d, c)}")
        for v in info.vouchers:
            console.print(
                f"  voucher          {money(v.balance, d, c)} {v.name!r} "
                f"({', '.join(v.categories)}) until {v.expires_at}  {v.programme}",
                soft_wrap=True,
            )
        console.print(f"  linked deposit   {money(info.deposit_balance, d, c)}")
        console.print(f"  balance cap      {money(info.limits.balance_cap, d, c)}")
        console.print(f"  per payment      {money(info.limits.single_payment, d, c)}")
        console.print(
            f"  today            {money(info.spent_today, d, c)} of "
            f"{money(info.limits.daily, d, c)}"
        )

    @group.command("load")
    def load(name: str, amount: str, data_dir: DataDir = None) -> None:
        """Move money from the linked deposit account into the wallet (e.g. 100.00)."""
        network, keys = store(data_dir)
        stored = resolve(keys, name)
        try:
            result = client_for(network, stored).load(amount_of(amount, network.currency_decimals))
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
            return
        console.print(
            f"loaded; wallet {shown(network, result.wallet_balance)}"
            f", deposit {shown(network, result.deposit_balance)}"
        )

    @group.command("unload")
    def unload(name: str, amount: str, data_dir: DataDir = None) -> None:
        """Move money from the wallet back to the linked deposit account."""
        network, keys = store(data_dir)
        stored = resolve(keys, name)
        try:
            result = client_for(network, stored).unload(
                amount_of(amount, network.currency_decimals)
            )
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
            return
        console.print(
            f"unloaded; wallet {shown(network, result.wallet_balance)}"
            f", deposit {shown(network, result.deposit_balance)}"
        )

    @group.command("deposit")
    def deposit(name: str, amount: str, data_dir: DataDir = None) -> None:
        """(Staff) credit the wallet holder's simulated bank deposit, e.g. a salary."""
        network, keys = store(data_dir)
        stored = resolve(keys, name)
        node = network.operator(stored.operator)
        info = client_for(network, stored).balance()
        import uuid

        staff = SignedClient(
            OperatorClient.connect(node.url).http,
            key=SigningKey.load(Path(node.key_file)),
            key_id=f"operator:{node.code}",
            audience=operator_audience(node.code),
        )
        try:
            result = staff.request(
                "POST",
                f"/v1/admin/customers/{info.customer_id}/deposit",
                {"amount": amount_of(amount, network.currency_decimals)},
                idempotency_key=str(uuid.uuid4()),
            )
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
            return
        console.print(f"deposit balance {shown(network, result['deposit_balance'])}")

    @group.command("pay")
    def pay(
        name: str,
        payee: Annotated[str, typer.Argument(help="payee wallet id, or a local nickname")],
        amount: str,
        memo: Annotated[str | None, typer.Option(help="note for the payee")] = None,
        voucher: Annotated[
            str | None,
            typer.Option(
                help="pay from a voucher: a programme id; auto (a voucher must pay); none "
                "(ordinary money only). Default: a voucher where one pays at this merchant "
                "and holds enough, else ordinary money"
            ),
        ] = None,
        data_dir: DataDir = None,
    ) -> None:
        """Sign and send a payment order; a voucher the wallet holds pays where it is eligible
        (the payee a merchant of one of its categories), unless --voucher none."""
        network, keys = store(data_dir)
        stored = resolve(keys, name)
        try:
            payee_id = keys.get(payee).wallet_id
        except KeyError:
            if not is_valid_wallet_id(payee):
                console.print(
                    f"[red]'{payee}' is neither a local wallet nickname nor a wallet id[/] "
                    "(see `cbdc wallet list`)"
                )
                raise typer.Exit(2) from None
            payee_id = payee
        try:
            minor = amount_of(amount, network.currency_decimals)
            client = client_for(network, stored)
            if voucher is None:
                voucher = eligible_voucher(client, payee_id, minor)
            receipt = (
                client.pay(payee_id, minor, memo=memo)
                if voucher in (None, "none")
                else programme.voucher_pay(client, payee_id, minor, voucher, memo)
            )
            if voucher not in (None, "none"):
                console.print(f"paid from a voucher of programme {voucher}")
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
            return
        console.print(
            f"payment {receipt.payment_id}: {receipt.route} "
            f"{shown(network, receipt.amount)} -> {receipt.payee} "
            f"[bold]{receipt.status}[/]"
        )

    def eligible_voucher(client: WalletClient, payee: str, amount: int) -> str | None:
        """The programme of a voucher of this wallet that pays `amount` at `payee` (soonest to
        expire first), or None: then the payment is made with ordinary money."""
        vouchers = [v for v in client.balance().vouchers if v.balance >= amount]
        if not vouchers:
            return None
        category = client.merchant_category(payee)
        fitting = [v for v in vouchers if category is not None and category in v.categories]
        return fitting[0].programme if fitting else None

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
        d, c = network.currency_decimals, network.currency
        rows = [
            (
                item.at[:19].replace("T", " "),
                item.kind.replace("_", " "),
                signed_money(item.amount, d, c),
                item.counterparty or "",
                item.status.replace("_", " "),
            )
            for item in items
        ]
        console.print(
            fitting_table(
                ("at", "kind", "amount", "counterparty", "status"),
                rows,
                title=f"{stored.name} {stored.wallet_id} (times UTC)",
                right=("amount",),
                whole=("kind", "amount", "counterparty"),
            )
        )
