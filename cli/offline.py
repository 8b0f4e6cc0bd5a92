"""`cbdc offline ...`: offline ("dual offline") device wallets from the shell.

Devices live in `<data dir>/devices/<name>.json` (wallets.offline.store), next to the wallet
keys. `pay` uses no network: both devices are local, the payer's secure element signs, the
payee's checks and stores (it works with the network stopped). `device add`, `fund`, `defund`
and `sync` talk to the device's operator; `show` asks it too when it answers. `clone` and
`rollback` are the attacks (docs/offline.md, threat model).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from cbdc.clock import utcnow
from cbdc.http import RemoteError, RemoteUnavailable
from cbdc.money import parse_amount
from cbdc.offline import OfflineRefusal
from cbdc.settings import NetworkConfig
from cli.console import console, fail, money
from cli.offline_render import (
    devices_table,
    local_devices_report,
    outcome,
    print_sync,
    print_view,
)
from wallets.client import NO_RETRY, OperatorClient
from wallets.keystore import KeyStore
from wallets.offline.client import OfflineClient
from wallets.offline.secure_element import SecureElement
from wallets.offline.store import DeviceStore, DeviceStoreError, StoredDevice

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="network data directory")]
LoadNetwork = Callable[[Path | None], NetworkConfig]

__all__ = ["data_root", "register"]


def data_root(network: NetworkConfig) -> Path:
    """The data directory the network file describes (where wallets/ and devices/ live)."""
    return Path(network.central_bank.key_file).parent.parent


def _usage(message: str) -> NoReturn:
    """An unknown name or bad input: one line, exit 2 (like the wallet commands)."""
    console.print(f"[red]{message}[/]")
    raise typer.Exit(2)


def _refused(refusal: OfflineRefusal) -> NoReturn:
    """A secure element's refusal, offline: its stable code and detail, exit 1."""
    console.print(f"[bold red]refused[/] [red]{refusal.code}[/]: {refusal.detail}")
    raise typer.Exit(1)


@contextmanager
def _errors() -> Iterator[None]:
    """Every expected failure as one line, never a traceback."""
    try:
        yield
    except OfflineRefusal as refusal:
        _refused(refusal)
    except DeviceStoreError as exc:
        _usage(str(exc))
    except json.JSONDecodeError as exc:
        _usage(f"a device file is damaged: {exc}")
    except (RemoteError, RemoteUnavailable) as exc:
        fail(exc)


class _Context:
    def __init__(self, network: NetworkConfig) -> None:
        self.network = network
        self.devices = DeviceStore(data_root(network))
        self.keys = KeyStore(data_root(network) / "wallets")

    def amount(self, text: str) -> int:
        try:
            return parse_amount(text, self.network.currency_decimals)
        except ValueError as exc:
            _usage(str(exc))

    def m(self, minor: int) -> str:
        return money(minor, self.network.currency_decimals, self.network.currency)

    def device(self, name: str) -> tuple[StoredDevice, SecureElement]:
        """A stored device and its secure element; a damaged file is one line, exit 2."""
        with _errors():
            try:
                device = self.devices.get(name)
                return device, device.element()
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                if isinstance(exc, DeviceStoreError):
                    raise
                _usage(f"device {name!r}: its file is damaged ({type(exc).__name__}: {exc})")
        raise AssertionError("unreachable")

    def client(self, device: StoredDevice, *, retry: bool = True) -> OfflineClient:
        """The operator client of the device's wallet (its key is in the local key store)."""
        try:
            stored = self.keys.get(device.wallet_id)
        except KeyError:
            _usage(
                f"the key of wallet {device.wallet_id} (device {device.name!r}) is not in "
                f"the local key store (see `cbdc wallet list`)"
            )
        url = self.network.operator(stored.operator).url
        operator = OperatorClient.connect(
            url, timeout=30 if retry else 5, retry=None if retry else NO_RETRY
        )
        return OfflineClient(
            operator.wallet(stored.wallet_id, stored.key),
            central_bank_public_key=self.network.central_bank.public_key,
        )


def register(group: typer.Typer, load_network: LoadNetwork) -> None:
    device_app = typer.Typer(no_args_is_help=True, help="Register offline devices.")
    group.add_typer(device_app, name="device")

    @device_app.command("add")
    def add(
        wallet: Annotated[str, typer.Argument(help="the online wallet (nickname or id)")],
        name: Annotated[str, typer.Option("--name", help="a name for the device")],
        data_dir: DataDir = None,
    ) -> None:
        """Make a device (its key is generated inside its secure element) and register it to
        WALLET at the wallet's operator, which certifies it with the wallet class's limits."""
        ctx = _Context(load_network(data_dir))
        try:
            stored = ctx.keys.get(wallet)
        except KeyError as exc:
            _usage(f"{exc.args[0]} (see `cbdc wallet list`)")
        with _errors():
            if ctx.devices.exists(name):
                _usage(f"a device named {name!r} already exists (see `cbdc offline list`)")
            element = SecureElement.generate(ctx.network.currency)
            node = ctx.network.operator(stored.operator)
            operator = OperatorClient.connect(node.url)
            OfflineClient(
                operator.wallet(stored.wallet_id, stored.key),
                central_bank_public_key=ctx.network.central_bank.public_key,
            ).register(element, name)
            ctx.devices.add(
                name,
                element,
                wallet_id=stored.wallet_id,
                operator=stored.operator,
                operator_url=node.url,
            )
        limits = element.limits
        console.print(
            f"device [bold]{element.device_id}[/] '{name}' registered to "
            f"{stored.name or stored.wallet_id} ({stored.wallet_id}) at {stored.operator}; "
            f"per payment {ctx.m(limits.per_payment)}, purse cap {ctx.m(limits.purse_cap)}, "
            f"sync after {limits.max_payments} payments or {limits.max_days} days"
        )

    @group.command("fund")
    def fund(name: str, amount: str, data_dir: DataDir = None) -> None:
        """Move money from the device's online wallet into its purse (online)."""
        ctx = _Context(load_network(data_dir))
        device, element = ctx.device(name)
        value = ctx.amount(amount)
        with _errors():
            try:
                result = ctx.client(device).fund(element, value)
            finally:
                ctx.devices.save(name, element)
        console.print(
            f"funded {ctx.m(value)}; purse {ctx.m(element.purse)}, "
            f"wallet {ctx.m(result.wallet_balance)}"
        )

    @group.command("defund")
    def defund(name: str, amount: str, data_dir: DataDir = None) -> None:
        """Move money from the purse back to the online wallet (online; the secure element
        signs a transfer to the wallet, adjudicated like any other)."""
        ctx = _Context(load_network(data_dir))
        device, element = ctx.device(name)
        value = ctx.amount(amount)
        with _errors():
            try:
                result = ctx.client(device).defund(element, value)
            finally:
                # the signed defund is in the device's log even if the operator did not answer:
                # it is adjudicated at the next sync
                ctx.devices.save(name, element)
        console.print(
            f"defunded {ctx.m(value)}: {outcome(result.outcome)}, credited "
            f"{ctx.m(result.credited)}; "
            f"purse {ctx.m(element.purse)}, wallet {ctx.m(result.wallet_balance)}"
        )

    @group.command("pay")
    def pay(
        payer: Annotated[str, typer.Argument(help="the paying device (local name)")],
        payee: Annotated[str, typer.Argument(help="the receiving device (local name)")],
        amount: str,
        data_dir: DataDir = None,
    ) -> None:
        """Pay offline, device to device, with no network: the payer's secure element signs a
        transfer, the payee's checks it (certificate chain, revocation list it last synced,
        signature, limits, counter) and stores it. The payee's value is credited to its online
        wallet at the next sync of either device."""
        ctx = _Context(load_network(data_dir))
        (_, payer_se), (_, payee_se) = ctx.device(payer), ctx.device(payee)
        value = ctx.amount(amount)
        now = utcnow()
        with _errors():
            if not payee_se.installed:
                _usage(f"device {payee!r} has no certificate installed")
            payment = payer_se.pay(payee_se.device_id, payee_se.wallet_id, value, now)
            # One tap: if the payee refuses, neither device changes (the transfer is dropped).
            document = payee_se.receive(payment, now)
            ctx.devices.save(payer, payer_se)  # the payer first: its log alone settles it
            ctx.devices.save(payee, payee_se)
        console.print(
            f"paid {ctx.m(value)} offline {payer} -> {payee} "
            f"(transfer {document['payer']} #{document['counter']}); "
            f"{payer} purse {ctx.m(payer_se.purse)}; {payee} holds it until a sync"
        )

    @group.command("sync")
    def sync(
        name: str,
        as_json: Annotated[bool, typer.Option("--json", help="the operator's answer")] = False,
        data_dir: DataDir = None,
    ) -> None:
        """Upload the device's log to its operator (signed batch), get the ack and the
        revocation list; payees are credited online, double spends detected."""
        ctx = _Context(load_network(data_dir))
        device, element = ctx.device(name)
        with _errors():
            try:
                answer = ctx.client(device).sync(element).model_dump()
            finally:
                ctx.devices.save(name, element)
        if as_json:
            print(json.dumps(answer, indent=2))
            return
        print_sync(name, answer, element, ctx.m)

    @group.command("show")
    def show(
        name: str,
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
        data_dir: DataDir = None,
    ) -> None:
        """Purse, counter, unsynced transfers, and the certificate's status: per the last
        revocation list the device synced and, when the operator answers, per the operator."""
        ctx = _Context(load_network(data_dir))
        device, element = ctx.device(name)
        view = element.view(utcnow())
        view["name"] = name
        view["operator_status"] = _operator_status(ctx, device, element)
        if as_json:
            print(json.dumps(view, indent=2))
            return
        print_view(view, ctx.m)

    @group.command("list")
    def list_devices(data_dir: DataDir = None) -> None:
        """Devices in the local data directory."""
        ctx = _Context(load_network(data_dir))
        console.print(devices_table(local_devices_report(ctx.network), ctx.m))

    @group.command("clone")
    def clone(name: str, new_name: str, data_dir: DataDir = None) -> None:
        """ATTACK: copy the device's sealed secure element (same key, counter and purse) to a
        second device NEW_NAME. Both can then spend the same purse with the same counters; the
        operator detects it when the conflicting transfers reach it."""
        ctx = _Context(load_network(data_dir))
        with _errors():
            copy = ctx.devices.clone(name, new_name)
        console.print(
            f"[yellow]cloned[/] {name} as {new_name} (device {copy.device_id}, counter "
            f"{copy.state['counter']}, purse {ctx.m(int(copy.state['purse']))})"
        )

    @group.command("rollback")
    def rollback(
        name: str,
        payments: Annotated[int, typer.Option("--payments", help="how many payments back")] = 1,
        data_dir: DataDir = None,
    ) -> None:
        """ATTACK: restore the device's sealed state as it was PAYMENTS payments ago (counter
        and purse back), so it can sign those counters again."""
        ctx = _Context(load_network(data_dir))
        with _errors():
            device = ctx.devices.rollback(name, payments)
        console.print(
            f"[yellow]rolled back[/] {name} to counter {device.state['counter']}, purse "
            f"{ctx.m(int(device.state['purse']))}"
        )


def _operator_status(ctx: _Context, device: StoredDevice, element: SecureElement) -> str:
    """The device's status at its operator, or why it is not known (no retries: `show` must
    answer at once when the network is down)."""
    if not element.installed:
        return "not registered"
    try:
        ctx.keys.get(device.wallet_id)
    except KeyError:
        return "unknown (the wallet's key is not in the local key store)"
    try:
        return ctx.client(device, retry=False).device(element.device_id).status
    except RemoteUnavailable:
        return "unreachable"
    except RemoteError as exc:
        return f"refused ({exc.code})"
