"""`cbdc escrow ...`: escrow between local wallets (keys in <data_dir>/wallets).

    cbdc escrow create alice bob 120 --deadline 2d                 # alice releases it herself
    cbdc escrow create alice bob 120 --deadline 2027-01-01T00:00:00+08:00 --arbiter carol
    cbdc escrow release ESCROW_ID --amount 50 --as alice           # part; all without --amount
    cbdc escrow refund ESCROW_ID --as bob                          # the payee gives it up
    cbdc escrow show ESCROW_ID [--as alice]                        # staff's view without --as

The value is locked in an account of its own until released to the payee, refunded by the
arbiter or the payee, or given back to the payer at the deadline (docs/programmable.md)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from cbdc.clock import iso, parse_iso, utcnow
from cbdc.http import RemoteError, RemoteUnavailable
from cbdc.settings import NetworkConfig
from cli.cash import key_store, staff_client
from cli.console import amount_of, console, fail, fitting_table, money
from cli.wallet_access import client_for, remote, resolve, wallet_id_of
from wallets.escrows import Escrow

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="network data directory")]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\+?(\d+)([smhdw])$")


def deadline_of(text: str) -> str:
    """`--deadline`: a duration from now (`90s`, `30m`, `12h`, `2d`, `1w`) or ISO 8601 with
    a time zone."""
    found = _DURATION.match(text.strip())
    try:
        if found is not None:
            seconds = int(found.group(1)) * _UNITS[found.group(2)]
            return iso(utcnow() + timedelta(seconds=seconds))
        return iso(parse_iso(text))
    except (ValueError, OverflowError):  # not a time, or none a calendar can hold
        raise typer.BadParameter(
            f"{text!r}: a duration like 2d, 12h, 30m or ISO 8601 with a time zone",
            param_hint="--deadline",
        ) from None


def register(group: typer.Typer, load_network: Callable[[Path | None], NetworkConfig]) -> None:
    def show(network: NetworkConfig, e: Escrow) -> None:
        m = lambda minor: money(minor, network.currency_decimals, network.currency)  # noqa: E731
        console.print(
            f"escrow {e.escrow_id}: {m(e.amount)} {e.payer} -> {e.payee}, [bold]{e.status}[/]; "
            f"released {m(e.released)}, refunded {m(e.refunded)}, remaining {m(e.remaining)}; "
            f"deadline {e.deadline}" + (f"; arbiter {e.arbiter}" if e.arbiter else ""),
            soft_wrap=True,
        )
        if e.payment is not None:
            console.print(
                f"payment {e.payment['payment_id']}: {m(e.payment['amount'])} "
                f"{e.payment['status']}",
                soft_wrap=True,
            )
        if e.events:
            rows = [(ev.at, ev.kind, m(ev.amount), ev.by or "deadline") for ev in e.events]
            console.print(
                fitting_table(
                    ("when", "what", "amount", "by"), rows, right=("amount",), whole=("amount",)
                )
            )

    @group.command("create")
    def create(
        payer: Annotated[str, typer.Argument(help="local wallet nickname (signs the order)")],
        payee: Annotated[str, typer.Argument(help="payee wallet id, or a local nickname")],
        amount: str,
        deadline: Annotated[str, typer.Option(help="2d, 12h, 30m, or ISO 8601 with zone")],
        arbiter: Annotated[
            str | None, typer.Option(help="nickname or id of a wallet at the payer's operator")
        ] = None,
        memo: Annotated[str | None, typer.Option(help="note for the payee")] = None,
        data_dir: DataDir = None,
    ) -> None:
        """Lock AMOUNT of PAYER for PAYEE until --deadline (then it goes back to PAYER)."""
        network = load_network(data_dir)
        keys = key_store(network)
        stored = resolve(keys, payer)
        payee_id = wallet_id_of(keys, payee)
        arbiter_id = wallet_id_of(keys, arbiter) if arbiter is not None else None
        escrow = remote(
            lambda: client_for(network, stored).create_escrow(
                payee_id,
                amount_of(amount, network.currency_decimals),
                deadline=deadline_of(deadline),
                arbiter=arbiter_id,
                memo=memo,
            )
        )
        show(network, escrow)

    @group.command("release")
    def release(
        escrow_id: str,
        as_: Annotated[str, typer.Option("--as", help="payer (no arbiter) or arbiter nickname")],
        amount: Annotated[
            str | None, typer.Option(help="part of it; default: all it holds")
        ] = None,
        data_dir: DataDir = None,
    ) -> None:
        """Release (part of) the escrow to its payee."""
        network = load_network(data_dir)
        client = client_for(network, resolve(key_store(network), as_))
        value = (
            amount_of(amount, network.currency_decimals)
            if amount is not None
            else remote(lambda: client.escrow(escrow_id).remaining)
        )
        show(network, remote(lambda: client.release_escrow(escrow_id, value)))

    @group.command("refund")
    def refund(
        escrow_id: str,
        as_: Annotated[str, typer.Option("--as", help="arbiter or payee nickname")],
        data_dir: DataDir = None,
    ) -> None:
        """Give what remains back to the payer (the arbiter, or the payee giving it up)."""
        network = load_network(data_dir)
        stored = resolve(key_store(network), as_)
        show(network, remote(lambda: client_for(network, stored).refund_escrow(escrow_id)))

    @group.command("show")
    def show_escrow(
        escrow_id: str,
        as_: Annotated[str | None, typer.Option("--as", help="a party's nickname")] = None,
        data_dir: DataDir = None,
    ) -> None:
        """The escrow and its releases and refunds (as a party, or with the staff keys)."""
        network = load_network(data_dir)
        try:
            if as_ is not None:
                client = client_for(network, resolve(key_store(network), as_))
                show(network, client.escrow(escrow_id))
                return
            answer: dict[str, Any] | None = None
            last: RemoteError | None = None
            for node in network.operators:
                try:
                    answer = staff_client(network, node.code).request(
                        "GET", f"/v1/escrows/{escrow_id}"
                    )
                    break
                except RemoteError as exc:
                    if exc.status != 404:
                        raise
                    last = exc
            if answer is None:
                assert last is not None
                fail(last)
            show(network, Escrow.model_validate(answer))
        except (RemoteError, RemoteUnavailable) as exc:
            fail(exc)
