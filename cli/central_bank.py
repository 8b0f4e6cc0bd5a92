"""`cbdc central-bank supply|issue|redeem`: the money supply as the central bank sees it, and an
operator's issuance or redemption on demand.

`supply` asks the central bank with the admin key (`GET /v1/stats/money-supply`). `issue` and
`redeem` are the operator's staff asking for them now (`POST /v1/admin/vault/issue|redeem`,
Idempotency-Key; the operator's outbox job talks to the central bank) and show the vault
afterwards. Issuance is refused beyond the operator's reserves; a redemption returns at most
the vault float (the rest of the float is allocated to wallets)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape

from cbdc.crypto import SigningKey
from cbdc.envelope import CENTRAL_BANK_AUDIENCE
from cbdc.http import RemoteError, RemoteUnavailable, SignedClient
from cbdc.settings import NetworkConfig
from cli.cash import staff_client
from cli.console import amount_of, console, fail, fitting_table, money, read_key

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="network data directory")]
OperatorOption = Annotated[str, typer.Option("--operator", help="routing code, e.g. BKA1")]
AmountArg = Annotated[str, typer.Argument(help="in major units, e.g. 100000")]
IdemOption = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key", help="resend a request whose answer was lost (default: a new one)"
    ),
]


def admin_client(network: NetworkConfig) -> SignedClient:
    cb = network.central_bank
    return SignedClient(
        httpx.Client(base_url=cb.url, timeout=60),
        key=read_key(SigningKey.load, Path(cb.admin_key_file), "the admin key"),
        key_id="admin",
        server_public_key=cb.public_key,
        audience=CENTRAL_BANK_AUDIENCE,
    )


def print_supply(supply: dict[str, Any], network: NetworkConfig) -> None:
    def m(minor: int) -> str:
        return money(int(minor), network.currency_decimals, network.currency)

    lines = supply["by_operator"]
    rows = [(o["operator"], m(o["circulation"]), m(o["reserves"])) for o in lines]
    rows.append(("total", m(supply["digital_currency_outstanding"]), m(supply["reserves_total"])))
    console.print(
        fitting_table(
            ("operator", "outstanding", "reserves"),
            rows,
            title="Money supply at the central bank",
            right=("outstanding", "reserves"),
            whole=("outstanding", "reserves"),
        )
    )
    operations = [
        (kind.replace("_", " "), f"{op['count']:,}", m(op["amount"]))
        for kind, op in sorted(supply.get("operations", {}).items())
    ]
    if operations:
        console.print(
            fitting_table(
                ("operation", "count", "amount"),
                operations,
                title="Operations of the central bank",
                right=("count", "amount"),
                whole=("amount",),
            )
        )
    console.print(f"live tokens: {supply['live_tokens']:,}")
    clearing = supply.get("clearing") or {}
    if clearing:
        console.print(
            f"clearing: {clearing.get('cycles', 0):,} cycles; waiting "
            f"{clearing.get('items_waiting', 0):,} payments ({m(clearing.get('gross_waiting', 0))})"
            f"; {clearing.get('obligations_pending', 0):,} obligations pending "
            f"({m(clearing.get('net_pending', 0))} net)"
        )


HOLDING_COLUMNS = (
    ("wallets", "wallets"),
    ("locked in escrows", "escrows"),
    ("vouchers", "vouchers"),
    ("offline purses", "offline_purses"),
    ("vault float", "vault_float"),
    ("in transit", "in_transit"),
)


def operator_holdings(network: NetworkConfig) -> list[tuple[str, dict[str, Any] | None]]:
    """Each operator's split of its circulation (staff `GET /v1/admin/vault`): only the operator
    knows it, the central bank sees the total (tier privacy). None: the operator did not answer
    (one line says so; a staff key that cannot be read, `read_key` has said why)."""
    found: list[tuple[str, dict[str, Any] | None]] = []
    for node in network.operators:
        try:
            vault = staff_client(network, node.code).request("GET", "/v1/admin/vault")
            found.append((node.code, dict(vault["holdings"])))
        except (RemoteError, RemoteUnavailable, KeyError, TypeError) as exc:
            console.print(
                f"[yellow]{node.code} did not answer[/]: {escape(str(exc))}", highlight=False
            )
            found.append((node.code, None))
        except typer.Exit:
            found.append((node.code, None))
    return found


def print_holdings(found: list[tuple[str, dict[str, Any] | None]], network: NetworkConfig) -> None:
    def m(minor: int) -> str:  # the currency once, in the caption: six amounts a row
        return money(int(minor), network.currency_decimals)

    rows = [
        (code, *(m(held.get(key, 0)) for _, key in HOLDING_COLUMNS))
        for code, held in found
        if held is not None
    ]
    if not rows:
        return
    columns = tuple(title for title, _ in HOLDING_COLUMNS)
    console.print(
        fitting_table(
            ("operator", *columns),
            rows,
            title="Where the digital currency is held (operators' books)",
            right=columns,
            whole=columns,
            caption=f"amounts in {network.currency}",
        )
    )


def print_vault(vault: dict[str, Any], code: str, network: NetworkConfig) -> None:
    def m(minor: int) -> str:
        return money(int(minor), network.currency_decimals, network.currency)

    accounts, tokens = vault["accounts"], vault["tokens"]
    rows = [  # (n): the number of signed tokens
        ("vault float (not allocated to wallets)", m(accounts.get("vault_float", 0))),
        ("tokens held", f"{m(tokens.get('held_value', 0))} ({tokens.get('held_count', 0):,})"),
        ("tokens reserved (being redeemed)", m(tokens.get("reserved_value", 0))),
        ("redemption pending", m(accounts.get("redemption_pending", 0))),
    ]
    console.print(
        fitting_table(
            ("", "amount"), rows, title=f"{code} vault", right=("amount",), whole=("amount",)
        )
    )


def register(app: typer.Typer, load_network: Callable[[Path | None], NetworkConfig]) -> None:
    group = typer.Typer(
        no_args_is_help=True,
        help="The central bank: money supply; an operator's issuance and redemption now.",
    )
    app.add_typer(group, name="central-bank")

    @group.command("supply")
    def supply(data_dir: DataDir = None) -> None:
        """(Admin) digital currency outstanding and reserves, by operator."""
        network = load_network(data_dir)
        try:
            answer = admin_client(network).request("GET", "/v1/stats/money-supply")
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
        print_supply(answer, network)
        print_holdings(operator_holdings(network), network)

    def vault_operation(
        kind: str, operator: str, amount: str, idempotency_key: str | None, data_dir: Path | None
    ) -> None:
        network = load_network(data_dir)
        if operator not in {node.code for node in network.operators}:
            codes = ", ".join(node.code for node in network.operators)
            console.print(f"[red]no operator {operator}[/] (this network has {codes})")
            raise typer.Exit(2)
        minor = amount_of(amount, network.currency_decimals)
        staff = staff_client(network, operator)
        try:
            result = staff.request(
                "POST",
                f"/v1/admin/vault/{kind}",
                {"amount": minor},
                idempotency_key=idempotency_key or str(uuid.uuid4()),
            )
            vault = staff.request("GET", "/v1/admin/vault")
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
        what = "issuance" if kind == "issue" else "redemption"
        done = result.get("amount")
        shown = money(int(done if done is not None else minor), network.currency_decimals)
        asked = money(minor, network.currency_decimals, network.currency)
        if result["status"] == "done" and not result.get("error"):
            of = "" if done in (None, minor) else f" of the {asked} asked"
            console.print(f"{operator} {what} done: {shown} {network.currency}{of}")
        elif result["status"] == "done":
            console.print(f"{operator} {what} of {asked}: {result['error']}")
        else:
            console.print(
                f"[bold red]{operator} {what} of {asked} {result['status']}[/]: "
                f"{result.get('error') or 'no answer from the central bank yet'}"
            )
        print_vault(vault, operator, network)
        if result["status"] != "done" or result.get("error"):
            raise typer.Exit(1)

    @group.command("issue")
    def issue(
        amount: AmountArg,
        operator: OperatorOption,
        idempotency_key: IdemOption = None,
        data_dir: DataDir = None,
    ) -> None:
        """(Operator staff) obtain issuance of AMOUNT into the operator's vault float now,
        against its reserves at the central bank."""
        vault_operation("issue", operator, amount, idempotency_key, data_dir)

    @group.command("redeem")
    def redeem(
        amount: AmountArg,
        operator: OperatorOption,
        idempotency_key: IdemOption = None,
        data_dir: DataDir = None,
    ) -> None:
        """(Operator staff) return AMOUNT of vault float to the central bank now (reserves
        credited back); at most the float there is."""
        vault_operation("redeem", operator, amount, idempotency_key, data_dir)
