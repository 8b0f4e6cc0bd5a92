"""A local key store: one JSON file per wallet (mode 0600) holding its private key, id,
operator and certificate, plus optional nicknames ("alice") for the CLI."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cbdc.crypto import SigningKey


@dataclass
class StoredWallet:
    wallet_id: str
    operator: str
    operator_url: str
    private_key: str
    public_key: str
    wallet_class: str
    name: str | None = None
    certificate: dict[str, Any] | None = None

    @property
    def key(self) -> SigningKey:
        return SigningKey.from_private_bytes(self.private_key)


class KeyStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, wallet_id: str) -> Path:
        return self.directory / f"{wallet_id}.json"

    def save(self, wallet: StoredWallet) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(wallet.wallet_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(wallet), handle, indent=2)

    def all(self) -> list[StoredWallet]:
        if not self.directory.exists():
            return []
        return [
            StoredWallet(**json.loads(p.read_text())) for p in sorted(self.directory.glob("*.json"))
        ]

    def get(self, name_or_id: str) -> StoredWallet:
        for wallet in self.all():
            if name_or_id in (wallet.wallet_id, wallet.name):
                return wallet
        raise KeyError(f"no wallet {name_or_id!r} in {self.directory}")
