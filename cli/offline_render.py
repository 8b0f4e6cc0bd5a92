"""Rendering for `cbdc offline ...` and the offline part of `cbdc audit`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from cbdc.settings import NetworkConfig
from cli.console import console, fitting_table, money
from wallets.offline.secure_element import SecureElement
from wallets.offline.store import DeviceStore

Money = Callable[[int], str]


def _transfers_table(title: str, lines: list[dict[str, Any]], m: Money) -> Table:
    rows = [
        (
            str(line["counter"]),
            str(line["payer"]),
            str(line["payee"]),
            m(int(line["amount"])),
            str(line["at"])[:19].replace("T", " "),
            str(line["hash"])[:16],
        )
        for line in lines
    ]
    return fitting_table(
        ("counter", "payer", "payee", "amount", "at", "hash"),
        rows,
        title=title,
        title_justify="left",
        right=("counter", "amount"),
        whole=("payer", "payee", "amount", "hash"),
    )


def print_view(view: dict[str, Any], m: Money) -> None:
    """`cbdc offline show`."""
    name = view.get("name", "")
    if not view.get("installed"):
        console.print(f"[bold]{name}[/]: no certificate installed (not registered)")
        return
    limits = view["limits"]
    listed = view.get("revocations_version")
    local = view["certificate_status"]
    operator = view.get("operator_status", "not asked")
    colour = "red" if "revoked" in (local, operator) else "green"
    console.print(f"[bold]{name}[/] device {view['device']} at {view['operator']}")
    console.print(f"  wallet             {view['wallet']}")
    console.print(f"  purse              {m(int(view['purse']))}")
    console.print(f"  counter            {view['counter']}  (fundings applied {view['fundings']})")
    console.print(
        f"  certificate        [{colour}]{local}[/] per the last list it synced "
        f"({'version ' + str(listed) if listed is not None else 'none synced yet'}); "
        f"[{colour}]{operator}[/] per the operator"
    )
    console.print(f"  serial             {view.get('serial')}  expires {view.get('expires_at')}")
    console.print(
        f"  limits             per payment {m(int(limits['per_payment']))}, purse cap "
        f"{m(int(limits['purse_cap']))}, sync after {limits['max_payments']} payments or "
        f"{limits['max_days']} days"
    )
    must = " [yellow](must sync before paying)[/]" if view.get("must_sync") else ""
    console.print(
        f"  last sync          {view.get('last_sync_at')}; payments since "
        f"{view.get('payments_since_sync')}{must}"
    )
    sent, received = view.get("unsynced_sent", []), view.get("unsynced_received", [])
    console.print(f"  unsynced           {len(sent)} sent, {len(received)} received")
    if sent:
        console.print(_transfers_table("  unsynced sent", sent, m))
    if received:
        console.print(_transfers_table("  unsynced received", received, m))


def outcome(text: str) -> str:
    """An adjudication outcome, a detected double spend in red."""
    return f"[bold red]{text} (detected)[/]" if text == "double_spend" else text


def print_sync(name: str, answer: dict[str, Any], element: SecureElement, m: Money) -> None:
    """`cbdc offline sync`: the operator's answer item by item."""
    listed = (answer.get("revocations") or {}).get("document", {})
    console.print(
        f"synced {name}: device {answer.get('device_status', '?')} at its operator, purse "
        f"{m(int(answer.get('purse_balance', element.purse)))} there; revocation list version "
        f"{listed.get('version', '?')} ({len(listed.get('revoked', []))} revoked)"
    )
    for item in answer.get("sent") or []:
        code = f" ({item['code']})" if item.get("code") else ""
        console.print(
            f"  sent     #{item.get('counter')} {str(item.get('hash') or '')[:16]} "
            f"{outcome(str(item.get('outcome')))}{code}"
        )
    for item in answer.get("received") or []:
        code = f" ({item['code']})" if item.get("code") else ""
        console.print(
            f"  received {item.get('payer')} #{item.get('counter')} "
            f"{str(item.get('hash') or '')[:16]} {outcome(str(item.get('status')))}{code}"
        )
    status = element.certificate_status()
    if status != "active":
        console.print(f"  [bold red]this device's certificate is {status}[/]")


def local_devices_report(network: NetworkConfig) -> list[dict[str, Any]]:
    """For `cbdc audit`: each local device with what no sync has acknowledged yet (transfers
    that left its purse, payments it holds: value its operator may not have seen; a defund
    stays listed until the next sync). Never fails the audit: an unreadable device file is
    listed with its error."""
    rows: list[dict[str, Any]] = []
    store = DeviceStore(Path(network.central_bank.key_file).parent.parent)
    for name in store.names():
        try:
            device = store.get(name)
            view = device.element().view()
        except Exception as exc:  # a damaged file must not hide the audit
            rows.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        sent, received = view.get("unsynced_sent", []), view.get("unsynced_received", [])
        rows.append(
            {
                "name": name,
                "device": device.device_id,
                "wallet": device.wallet_id,
                "purse": int(view["purse"]),
                "counter": int(view["counter"]),
                "certificate": view["certificate_status"],
                "unsynced_sent": len(sent),
                "unsynced_sent_value": sum(int(line["amount"]) for line in sent),
                "unsynced_received": len(received),
                "unsynced_received_value": sum(int(line["amount"]) for line in received),
                "sent": sent,  # each: payer, payee, counter, amount, at, hash
                "received": received,
            }
        )
    return rows


def unsynced_table(rows: list[dict[str, Any]], network: NetworkConfig) -> Table:
    """The audit's listing of the local devices (information, not an invariant)."""

    def m(minor: int) -> str:
        return money(minor, network.currency_decimals, network.currency)

    lines = [
        (row["name"], "", "", "", f"[red]{row['error']}[/]")
        if "error" in row
        else (
            f"{row['name']} {row['device'] or ''}",
            m(row["purse"]),
            f"{row['unsynced_sent']} ({m(row['unsynced_sent_value'])})",
            f"{row['unsynced_received']} ({m(row['unsynced_received_value'])})",
            str(row["certificate"]),
        )
        for row in rows
    ]
    columns = ("device", "purse (on device)", "unsynced sent", "unsynced received", "cert")
    return fitting_table(
        columns,
        lines,
        title="Local offline devices: transfers no sync has acknowledged yet (listed, not checked)",
        right=columns[1:4],
        whole=("device",),
    )


def devices_table(rows: list[dict[str, Any]], m: Money, width: int | None = None) -> Table:
    """`cbdc offline list`: the devices in the local data directory (`local_devices_report`):
    name and device id, wallet, purse, what no sync has acknowledged yet (and the counter of
    the last transfer signed), the certificate's status per the last revocation list."""
    lines = [
        (escape(row["name"]), "", "", f"[red]damaged: {escape(row['error'])}[/]", "")
        if "error" in row
        else (
            f"{escape(row['name'])}\n[dim]{row['device'] or 'not registered'}[/]",
            str(row["wallet"]),
            m(row["purse"]),
            f"{row['unsynced_sent']} sent, {row['unsynced_received']} received "
            f"(counter {row['counter']})",
            str(row["certificate"]),
        )
        for row in rows
    ]
    return fitting_table(
        ("device", "wallet", "purse", "unsynced", "status"),
        lines,
        right=("purse",),
        whole=("wallet", "purse"),
        width=width,
    )
