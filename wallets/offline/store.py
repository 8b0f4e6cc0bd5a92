"""The local device store: offline devices kept in the CLI's data directory like wallet keys
(wallets.keystore), one JSON file per device, `<data dir>/devices/<name>.json`, mode 0600.

A file holds the device's name, the online wallet it is registered to, its operator (code and
URL), the secure element's sealed state (`SecureElement.state()`, which includes the device key:
hence the file mode) and up to `HISTORY` earlier states: each change pushes the previous state.
The earlier states exist for the rollback attack (`rollback(name, n)`: the device as it was n
payments ago); `clone(name, new_name)` is the clone attack (the same sealed state under a second
name). Both are for research and demos: an honest device never does either.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wallets.offline.secure_element import SecureElement

HISTORY = 20
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class DeviceStoreError(Exception):
    """A device store refusal (the CLI prints its message)."""


class UnknownDevice(DeviceStoreError, KeyError):
    """No device of that name in the store."""

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return str(self.args[0])


class DeviceExists(DeviceStoreError):
    """A device of that name is already in the store."""


@dataclass
class StoredDevice:
    name: str
    wallet_id: str
    operator: str
    operator_url: str
    state: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)  # oldest first

    def element(self) -> SecureElement:
        """The device's secure element, opened from its sealed state."""
        return SecureElement.from_state(self.state)

    @property
    def device_id(self) -> str | None:
        device = self.state.get("device")
        return None if device is None else str(device)


class DeviceStore:
    """Devices under `<directory>/devices/` (the directory is the CLI's data directory)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory) / "devices"

    def _path(self, name: str) -> Path:
        if not isinstance(name, str) or not NAME.match(name):
            raise DeviceStoreError(
                f"bad device name {name!r}: letters, digits, '.', '_' or '-' (at most 64)"
            )
        return self.directory / f"{name}.json"

    def _write(self, device: StoredDevice) -> None:
        """Write the file whole (a temporary file renamed over it), readable by its owner only."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(device.name)
        temporary = path.with_name(f".{path.name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(device), handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    # ------------------------------------------------------------ reading

    def names(self) -> list[str]:
        if not self.directory.exists():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json") if NAME.match(p.stem))

    def all(self) -> list[StoredDevice]:
        return [self.get(name) for name in self.names()]

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def get(self, name: str) -> StoredDevice:
        path = self._path(name)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise UnknownDevice(f"no device {name!r} in {self.directory}") from None
        return StoredDevice(**raw)

    def find(self, device_id: str) -> StoredDevice:
        """The stored device with that device id (the first by name if cloned)."""
        for device in self.all():
            if device.device_id == device_id:
                return device
        raise UnknownDevice(f"no device with id {device_id} in {self.directory}")

    # ------------------------------------------------------------ writing

    def add(
        self,
        name: str,
        element: SecureElement,
        *,
        wallet_id: str,
        operator: str,
        operator_url: str,
    ) -> StoredDevice:
        """Keep a new device; refuses a name already taken."""
        if self.exists(name):
            raise DeviceExists(f"a device named {name!r} already exists in {self.directory}")
        device = StoredDevice(
            name=name,
            wallet_id=wallet_id,
            operator=operator,
            operator_url=operator_url,
            state=element.state(),
        )
        self._write(device)
        return device

    def save(self, name: str, element: SecureElement) -> StoredDevice:
        """Store the secure element's new state; the previous one joins the history."""
        device = self.get(name)
        state = element.state()
        if state != device.state:
            if state.get("public_key") != device.state.get("public_key"):
                raise DeviceStoreError(f"that secure element is not device {name!r}")
            device.history = [*device.history, device.state][-HISTORY:]
            device.state = state
            self._write(device)
        return device

    def remove(self, name: str) -> None:
        self.get(name)
        self._path(name).unlink()

    # ------------------------------------------------------------ the attacks

    def clone(self, name: str, new_name: str) -> StoredDevice:
        """The clone attack: a second device with the same sealed state (key, counter, purse)."""
        device = self.get(name)
        if self.exists(new_name):
            raise DeviceExists(f"a device named {new_name!r} already exists in {self.directory}")
        copy = StoredDevice(
            name=new_name,
            wallet_id=device.wallet_id,
            operator=device.operator,
            operator_url=device.operator_url,
            state=device.element().clone().state(),
        )
        self._write(copy)
        return copy

    def rollback(self, name: str, n: int = 1) -> StoredDevice:
        """The rollback attack: restore the sealed state as it was `n` payments ago (the latest
        earlier state whose counter is at most the current counter - n). The states after it
        are forgotten, as a restored memory image would."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DeviceStoreError("roll back by at least one payment")
        device = self.get(name)
        target = int(device.state["counter"]) - n
        for index in range(len(device.history) - 1, -1, -1):
            if int(device.history[index]["counter"]) <= target:
                device.state = device.history[index]
                device.history = device.history[:index]
                self._write(device)
                return device
        raise DeviceStoreError(
            f"device {name!r} has no stored state from {n} payment(s) ago "
            f"(it keeps the last {HISTORY} changes)"
        )
