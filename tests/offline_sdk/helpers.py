"""Devices for the SDK tests: a wallet at an operator of the in-process network, its
OfflineClient and a registered secure element."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wallets.client import WalletClient
from wallets.offline.client import OfflineClient
from wallets.offline.secure_element import SecureElement


@dataclass
class Device:
    wallet: WalletClient
    client: OfflineClient
    se: SecureElement

    @property
    def id(self) -> str:
        return self.se.device_id


def device(
    net: Any, code: str = "BKA1", *, load: int = 1_000_00, fund: int = 0, name: str = "phone"
) -> Device:
    """A wallet at `code` loaded with `load`, a device registered to it (funded with `fund`)."""
    wallet = net.open_wallet(code, load=load)
    client = OfflineClient(wallet, central_bank_public_key=net.cb_key.public_key)
    se = SecureElement.generate(net.currency)
    client.register(se, name)
    if fund:
        client.fund(se, fund)
    return Device(wallet, client, se)
