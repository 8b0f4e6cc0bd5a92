"""`cbdc schedule ...`: scheduled payments of a local wallet (keys in <data_dir>/wallets).

    cbdc schedule create alice bob 12.50 --at +10m                 # once, in ten minutes
    cbdc schedule create alice bob 100 --at 2027-01-01T09:00:00+08:00 --every 1d --count 30
    cbdc schedule list alice
    cbdc schedule cancel SCHEDULE_ID --as alice

Each execution is an ordinary payment the operator makes at the time (docs/programmable.md)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from cbdc.clock import iso, parse_iso, utcnow
from cbdc.settings import NetworkConfig
from cli.cash import key_store
from cli.console import amount_of, console, fitting_table, money
from cli.wallet_access import client_for, remote, resolve, wallet_id_of
from wallets.keystore import KeyStore
from wallets.schedules import Schedule

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="network data directory")]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\+?(\d+)([smhdw]?)$")


def seconds_of(text: str) -> int:
    """A duration as `90`, `3600s`, `10m`, `2h`, `1d`, `1w` (a leading `+` allowed)."""
    found = _DURATION.match(text.strip())
    if found is None:
        raise typer.BadParameter(f"{text!r}: a duration like 90s, 10m, 2h, 1d")
    return int(found.group(1)) * _UNITS[found.group(2) or "s"]


def time_of(text: str, now: datetime) -> str:
    """`--at`: ISO 8601 with a time zone, or `+<duration>` from now."""
    try:
        if text.startswith("+"):
            return iso(now + timedelta(seconds=seconds_of(text)))
        return iso(parse_iso(text))
    except (ValueError, OverflowError):  # not a time, or none a calendar can hold
        raise typer.BadParameter(f"{text!r}: ISO 8601 with a time zone, or +10m") from None


def every_text(seconds: int | None) -> str:
    if seconds is None:
        return "once"
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"every {seconds // size}{unit}"
    return f"every {seconds}s"


def register(group: typer.Typer, load_network: Callable[[Path | None], NetworkConfig]) -> None:
    def store(data_dir: Path | None) -> tuple[NetworkConfig, KeyStore]:
        network = load_network(data_dir)
        return network, key_store(network)

    def shown(network: NetworkConfig, minor: int) -> str:
        return money(minor, network.currency_decimals, network.currency)

    def describe(network: NetworkConfig, s: Schedule) -> str:
        return (
            f"schedule {s.schedule_id}: {shown(network, s.amount)} -> {s.payee} "
            f"{every_text(s.every)}, {s.executed}/{s.count} done, [bold]{s.status}[/]"
            + (f", next {s.next_at}" if s.next_at else "")
        )

    @group.command("create")
    def create(
        payer: Annotated[str, typer.Argument(help="local wallet nickname (signs the order)")],
        payee: Annotated[str, typer.Argument(help="payee wallet id, or a local nickname")],
        amount: str,
        at: Annotated[str, typer.Option("--at", help="first time: ISO 8601 or +10m")],
        every: Annotated[str | None, typer.Option(help="repeat: 1d, 12h, 3600s")] = None,
        count: Annotated[int | None, typer.Option(help="executions at most (with --every)")] = None,
        memo: Annotated[str | None, typer.Option(help="note for the payee")] = None,
        data_dir: DataDir = None,
    ) -> None:
        """Sign a schedule: pay PAYEE AMOUNT at --at, then --every, --count times at most."""
        network, keys = store(data_dir)
        stored = resolve(keys, payer)
        payee_id = wallet_id_of(keys, payee)
        if every is not None and count is None:
            raise typer.BadParameter("--count is needed with --every", param_hint="--count")
        schedule = remote(
            lambda: client_for(network, stored).schedule_payment(
                payee_id,
                amount_of(amount, network.currency_decimals),
                first_at=time_of(at, utcnow()),
                every=seconds_of(every) if every is not None else None,
                count=count if count is not None else 1,
                memo=memo,
            )
        )
        console.print(describe(network, schedule), soft_wrap=True)

    @group.command("cancel")
    def cancel(
        schedule_id: str,
        as_: Annotated[str, typer.Option("--as", help="the payer's local nickname")],
        data_dir: DataDir = None,
    ) -> None:
        """Cancel a schedule (no execution after this)."""
        network, keys = store(data_dir)
        stored = resolve(keys, as_)
        schedule = remote(lambda: client_for(network, stored).cancel_schedule(schedule_id))
        console.print(describe(network, schedule), soft_wrap=True)

    @group.command("list")
    def list_schedules(name: str, data_dir: DataDir = None) -> None:
        """The wallet's schedules and their executions so far."""
        network, keys = store(data_dir)
        stored = resolve(keys, name)
        found = remote(lambda: client_for(network, stored).schedules())
        rows = [
            (
                s.schedule_id,
                s.payee,
                shown(network, s.amount),
                every_text(s.every),
                f"{s.executed}/{s.count}",
                ", ".join(f"{e.n}:{e.failure or e.payment_status}" for e in s.executions) or "-",
                s.status,
                s.next_at or "-",
            )
            for s in found
        ]
        console.print(
            fitting_table(
                ("schedule", "payee", "amount", "when", "done", "executions", "status", "next"),
                rows,
                title=f"schedules of {name}",
                right=("amount",),
                whole=("schedule", "payee", "amount"),
            )
        )
