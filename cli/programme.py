"""`cbdc programme ...`: purpose-bound, expiring vouchers of a local issuer wallet (keys in
<data_dir>/wallets).

    cbdc programme create agency --name "food aid" --categories groceries,pharmacy \\
        --per-holder 200 --expires 30d
    cbdc programme fund PROGRAMME_ID alice 100 --as agency        # a grant to alice
    cbdc programme show PROGRAMME_ID --as agency
    cbdc wallet pay alice shop 20 --voucher PROGRAMME_ID|auto     # spend at a merchant

Unspent vouchers go back to the issuer at the expiry (docs/programmable.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from cbdc.settings import NetworkConfig
from cli.cash import key_store
from cli.console import amount_of, console, fitting_table, money
from cli.escrow import deadline_of
from cli.wallet_access import client_for, remote, resolve
from wallets.client import WalletClient
from wallets.vouchers import Programme, VoucherPayment

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="network data directory")]


def voucher_pay(
    client: WalletClient, payee: str, amount: int, voucher: str, memo: str | None
) -> VoucherPayment:
    """`cbdc wallet pay ... --voucher PROGRAMME|auto`: with `auto`, the first voucher (soonest
    to expire) of a programme paying at the payee's category that holds enough."""
    programme = voucher
    if voucher == "auto":
        category = client.merchant_category(payee)
        if category is None:
            console.print(f"[red]{payee} is not a registered merchant: no voucher pays there[/]")
            raise typer.Exit(1)
        fitting = [
            v for v in client.balance().vouchers if category in v.categories and v.balance >= amount
        ]
        if not fitting:
            console.print(
                f"[red]no voucher of this wallet pays {category} merchants with enough left[/]"
            )
            raise typer.Exit(1)
        programme = fitting[0].programme
    return client.pay_with_voucher(payee, amount, programme=programme, memo=memo)


def expiry_of(text: str) -> str:
    """`--expires`: as escrow's `--deadline` (a duration or ISO 8601), named as this option."""
    try:
        return deadline_of(text)
    except typer.BadParameter as exc:
        raise typer.BadParameter(exc.message, param_hint="--expires") from None


def show(network: NetworkConfig, p: Programme) -> None:
    m = lambda minor: money(minor, network.currency_decimals, network.currency)  # noqa: E731
    console.print(
        f"programme {p.programme_id} {p.name!r} of {p.issuer}: [bold]{p.status}[/], "
        f"{', '.join(p.categories)}; per holder {m(p.per_holder)}; expires {p.expires_at}; "
        f"granted {m(p.granted)}, spent {m(p.spent)}, returned {m(p.returned)}, "
        f"outstanding {m(p.outstanding)}",
        soft_wrap=True,
    )
    if p.holders:
        rows = [
            (h.holder, m(h.granted), m(h.spent), m(h.returned), m(h.balance)) for h in p.holders
        ]
        money_cols = ("granted", "spent", "returned", "balance")
        console.print(
            fitting_table(("holder", *money_cols), rows, right=money_cols, whole=money_cols)
        )


def register(group: typer.Typer, load_network: Callable[[Path | None], NetworkConfig]) -> None:
    @group.command("create")
    def create(
        issuer: Annotated[str, typer.Argument(help="local wallet nickname (signs the order)")],
        name: Annotated[str, typer.Option(help="the programme's name")],
        categories: Annotated[str, typer.Option(help="merchant categories, comma separated")],
        per_holder: Annotated[str, typer.Option("--per-holder", help="cap granted per holder")],
        expires: Annotated[str, typer.Option(help="30d, 12h, or ISO 8601 with zone")],
        data_dir: DataDir = None,
    ) -> None:
        """Create a programme of vouchers ISSUER grants (spendable at --categories)."""
        network = load_network(data_dir)
        client = client_for(network, resolve(key_store(network), issuer))
        created = remote(
            lambda: client.create_programme(
                name=name,
                categories=[c.strip() for c in categories.split(",") if c.strip()],
                per_holder=amount_of(per_holder, network.currency_decimals),
                expires_at=expiry_of(expires),
            )
        )
        show(network, created)

    @group.command("fund")
    def fund(
        programme: str,
        holder: Annotated[str, typer.Argument(help="holder: local nickname or wallet id")],
        amount: str,
        as_: Annotated[str, typer.Option("--as", help="the issuer's nickname")],
        data_dir: DataDir = None,
    ) -> None:
        """Grant AMOUNT of the programme's vouchers to HOLDER."""
        network = load_network(data_dir)
        keys = key_store(network)
        client = client_for(network, resolve(keys, as_))
        try:
            holder_id = keys.get(holder).wallet_id
        except KeyError:
            holder_id = holder
        granted = remote(
            lambda: client.grant_voucher(
                programme, holder_id, amount_of(amount, network.currency_decimals)
            )
        )
        show(network, granted)

    @group.command("show")
    def show_programme(
        programme: str,
        as_: Annotated[str, typer.Option("--as", help="the issuer's (or a holder's) nickname")],
        data_dir: DataDir = None,
    ) -> None:
        """The programme, its totals and holders."""
        network = load_network(data_dir)
        stored = resolve(key_store(network), as_)
        show(network, remote(lambda: client_for(network, stored).programme(programme)))
