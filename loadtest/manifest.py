"""The load-test manifest: the wallets `loadtest.seed` registered, by operator, and the seed their
keys derive from (`loadtest.keys`). Written by the seeder, read by every Locust process: kept
apart from the seeder so that Locust imports none of the services' code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.orders import PLAIN

MERCHANT_SUFFIX = ":merchant"


@dataclass
class OperatorWallets:
    code: str
    url: str
    wallets: list[str] = field(default_factory=list)
    anonymous: list[bool] = field(default_factory=list)
    merchants: list[str] = field(default_factory=list)


@dataclass
class Manifest:
    key_seed: str
    currency: str
    decimals: int
    operators: list[OperatorWallets]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "key_seed": self.key_seed,
            "currency": self.currency,
            "decimals": self.decimals,
            "operators": [vars(o) for o in self.operators],
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        if not path.exists():
            raise FileNotFoundError(
                f"no load-test manifest at {path}: seed wallets first "
                "(python -m loadtest.seed, or cbdc bench)"
            )
        body = json.loads(path.read_text())
        manifest = cls(
            key_seed=body["key_seed"],
            currency=body["currency"],
            decimals=body["decimals"],
            operators=[OperatorWallets(**o) for o in body["operators"]],
        )
        manifest.check_plain()
        return manifest

    def check_plain(self) -> None:
        """Every wallet id and the currency are plain text: the load generator writes them into
        orders without escaping (`loadtest.orders.payment_body`)."""
        names = [self.currency]
        for operator in self.operators:
            names += operator.wallets
            names += operator.merchants
        for name in names:
            if not PLAIN.fullmatch(name):
                raise ValueError(f"manifest: {name!r} is not plain text")

    @property
    def wallet_count(self) -> int:
        return sum(len(o.wallets) for o in self.operators)
