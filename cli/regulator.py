"""`cbdc regulator ...`: keys, disclosure orders, alerts and the disclosure log, as the
regulator. Its private keys live in the network's regulator directory (or --keys), which no
service reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from cbdc.disclosure_log import describe
from cbdc.envelope import CENTRAL_BANK_AUDIENCE, operator_audience
from cbdc.http import RemoteError, RemoteUnavailable, SignedClient
from cbdc.sealing import SealError
from cbdc.settings import NetworkConfig
from cli.console import console, fail, fitting_table, money, read_key
from regulator.client import (
    RegulatorKeys,
    check_operator_log,
    disclosure_order,
    open_escrow_versions,
    send_disclosure,
)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="network data directory")]
Keys = Annotated[Path | None, typer.Option("--keys", help="regulator key directory")]


def register(group: typer.Typer, load_network: Callable[[Path | None], NetworkConfig]) -> None:
    def keys_for(network: NetworkConfig, keys: Path | None) -> RegulatorKeys:
        return read_key(
            RegulatorKeys.load, keys or Path(network.regulator.key_dir), "the regulator's keys"
        )

    @group.command("keygen")
    def keygen(out: Annotated[Path, typer.Option(help="directory for the new keys")]) -> None:
        """Make a regulator key pair (Ed25519 for orders, X25519 for escrow)."""
        if (out / "signing.key").exists():
            console.print(f"[red]{out} already holds regulator keys[/]")
            raise typer.Exit(2)
        keys = RegulatorKeys.generate()
        keys.save(out)
        console.print_json(json.dumps(keys.public()))

    @group.command("order")
    def order(
        wallet: str,
        basis: Annotated[str, typer.Option(help="legal basis, e.g. a statute and case number")],
        requester: Annotated[str, typer.Option(help="who asks for the disclosure")],
        keys: Keys = None,
        data_dir: DataDir = None,
    ) -> None:
        """Sign a disclosure order and print it (JSON), without sending it."""
        network = load_network(data_dir)
        signed = disclosure_order(
            keys_for(network, keys), wallet_id=wallet, legal_basis=basis, requester=requester
        )
        print(json.dumps(signed, indent=2))

    @group.command("disclose")
    def disclose(
        wallet: Annotated[
            str | None, typer.Argument(help="wallet id (not with --order-file)")
        ] = None,
        basis: Annotated[str | None, typer.Option(help="legal basis")] = None,
        requester: Annotated[str | None, typer.Option(help="who asks for the disclosure")] = None,
        order_file: Annotated[Path | None, typer.Option(help="send this signed order")] = None,
        as_of: Annotated[
            str | None,
            typer.Option(help="ISO 8601 time: the identity in force then (default: all versions)"),
        ] = None,
        keys: Keys = None,
        data_dir: DataDir = None,
    ) -> None:
        """Send a signed disclosure order to the wallet's operator and open the identity it
        releases with the regulator's private key: the version in force at --as-of, or every
        version the wallet's identity had, each with its validity period. The log entry the
        order got is recorded in the regulator's head file (log_heads.json); a head that does
        not extend the one known before is reported, exit 1."""
        network = load_network(data_dir)
        regulator = keys_for(network, keys)
        if order_file is not None:
            try:
                signed = json.loads(order_file.read_text())
                wallet = str(signed["order"]["wallet_id"])
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
                console.print(
                    f"[red]{order_file}: not a signed disclosure order[/] "
                    f"({type(exc).__name__}: {exc}); expected JSON "
                    '{"order": {"wallet_id": ...}, "signature": ...}'
                )
                raise typer.Exit(2) from None
        elif wallet and basis and requester:
            signed = disclosure_order(
                regulator, wallet_id=wallet, legal_basis=basis, requester=requester, as_of=as_of
            )
        else:
            console.print("[red]give WALLET, --basis and --requester, or --order-file[/]")
            raise typer.Exit(2)
        try:
            node = network.operator(wallet[:4])
        except KeyError:
            console.print(f"[red]no operator with routing code {wallet[:4]}[/]")
            raise typer.Exit(2) from None
        try:
            released, head_problem = send_disclosure(
                httpx.Client(base_url=node.url, timeout=30),
                node.code,
                signed,
                keys=regulator,
                key_dir=keys or Path(network.regulator.key_dir),
                audience=operator_audience(node.code),
            )
            records = open_escrow_versions(regulator, released)
        except (RemoteError, RemoteUnavailable, SealError) as exc:
            fail(exc)
            return
        console.print(
            f"order {released['order_id']} logged at {node.code} as entry "
            f"#{released['log']['seq']} ({released['log']['hash'][:16]}...)"
        )
        if released.get("released") == "version-at-as-of":
            console.print(f"identity in force at {released['as_of']}:")
        else:
            console.print(f"{len(records)} identity version(s), oldest first:")
        for record in records:
            console.print(
                f"version {record.get('version', '?')}: from {record.get('valid_from', '?')} "
                f"until {record.get('valid_until') or 'now'}"
            )
            console.print_json(json.dumps(record))
        if head_problem is not None:
            console.print(
                f"[bold red]DISCLOSURE LOG OF {node.code} NOT EXTENDED: {head_problem}; "
                f"the head file keeps the head known before[/]"
            )
            raise typer.Exit(1)

    @group.command("alerts")
    def alerts(
        rule: Annotated[str | None, typer.Option(help="filter by rule")] = None,
        operator: Annotated[str | None, typer.Option(help="filter by operator")] = None,
        wallet: Annotated[str | None, typer.Option(help="filter by wallet id")] = None,
        limit: int = 50,
        keys: Keys = None,
        data_dir: DataDir = None,
    ) -> None:
        """AML alerts at the central bank's analysis centre (pseudonymous)."""
        network = load_network(data_dir)
        regulator = keys_for(network, keys)
        client = SignedClient(
            httpx.Client(base_url=network.central_bank.url, timeout=30),
            key=regulator.signing,
            key_id="regulator",
            server_public_key=network.central_bank.public_key,
            audience=CENTRAL_BANK_AUDIENCE,
        )
        try:
            data = client.request(
                "GET",
                "/v1/analysis/alerts",
                params={"rule": rule, "operator": operator, "wallet": wallet, "limit": limit},
            )
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
            return
        if data["alerts"]:
            console.print(alerts_table(data["alerts"], network.currency_decimals, network.currency))
        else:
            console.print(
                "No AML alerts" + (" match the filters." if rule or operator or wallet else ".")
            )
        totals = data["totals_by_rule"]
        console.print(
            "alerts received, by rule: "
            + (", ".join(f"{escape(str(r))} {n:,}" for r, n in sorted(totals.items())) or "none")
        )

    @group.command("log")
    def log(
        operator: Annotated[str | None, typer.Option(help="only this operator")] = None,
        keys: Keys = None,
        data_dir: DataDir = None,
    ) -> None:
        """Fetch each operator's disclosure log and check it here: hash chain, the regulator's
        signature on every order, the head this regulator saw last, and the heads the
        operator anchored at the central bank."""
        network = load_network(data_dir)
        regulator = keys_for(network, keys)
        key_dir = keys or Path(network.regulator.key_dir)
        central_bank = SignedClient(
            httpx.Client(base_url=network.central_bank.url, timeout=30),
            key=regulator.signing,
            key_id="regulator",
            server_public_key=network.central_bank.public_key,
            audience=CENTRAL_BANK_AUDIENCE,
        )
        broken = False
        try:
            central = central_bank.request(
                "GET", "/v1/disclosure-anchors", params={"operator": operator}
            )
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
        for node in network.operators:
            if operator and node.code != operator:
                continue
            client = SignedClient(
                httpx.Client(base_url=node.url, timeout=30),
                key=regulator.signing,
                key_id="regulator",
                audience=operator_audience(node.code),
            )
            try:
                rows = client.request("GET", "/v1/regulator/disclosure-log")["entries"]
            except (RemoteError, RemoteUnavailable) as exc:
                fail(exc)
            result = check_operator_log(
                regulator,
                key_dir,
                code=node.code,
                rows=rows,
                central=central,
                central_bank_key=network.central_bank.public_key,
            )
            if rows:
                console.print(log_table(node.code, rows))
            if result["ok"]:
                console.print(
                    f"[green]{node.code}: chain intact[/] ({result['length']} orders, "
                    f"anchored at the central bank up to #{result['anchored']})"
                )
            else:
                broken = True
                console.print(
                    f"[bold red]{node.code}: chain BROKEN at entry #{result['broken_at']}[/] "
                    f"({describe(result)})"
                )
        raise typer.Exit(1 if broken else 0)


def alerts_table(
    alerts: list[dict[str, Any]], decimals: int, currency: str, width: int | None = None
) -> Table:
    """`cbdc regulator alerts`: amounts in major units with the currency, wallet ids whole."""
    rows = [
        (
            str(a["occurred_at"])[:19].replace("T", " "),
            escape(str(a["operator"])),
            escape(str(a["wallet"])),
            escape(str(a["rule"])),
            money(int(a["amount"]), decimals, currency),
        )
        for a in alerts
    ]
    return fitting_table(
        ("when", "operator", "wallet", "rule", "amount"),
        rows,
        title="AML alerts (pseudonymous)",
        right=("amount",),
        whole=("wallet", "amount"),
        width=width,
    )


def log_table(code: str, rows: list[dict[str, Any]], width: int | None = None) -> Table:
    """`cbdc regulator log`: the orders in one operator's disclosure log, oldest first."""
    lines = []
    for row in rows:
        order = row["entry"]["order"]
        lines.append(
            (
                str(row["seq"]),
                str(row["created_at"])[:19].replace("T", " "),
                escape(str(order["wallet_id"])),
                escape(str(order["legal_basis"])),
                escape(str(order["requester"])),
            )
        )
    return fitting_table(
        ("#", "logged", "wallet", "legal basis", "requester"),
        lines,
        title=f"Disclosure log of {code}",
        right=("#",),
        whole=("#", "wallet"),
        width=width,
    )
