"""The wallet-class policy: limits per class of controllable anonymity, loaded from TOML."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

DEFAULT_POLICY_FILE = Path(__file__).with_name("policy.toml")


class WalletClass(IntEnum):
    I = 1  # noqa: E741 - the class names are the regulator's
    II = 2
    III = 3
    IV = 4

    @classmethod
    def parse(cls, text: str | int) -> WalletClass:
        if isinstance(text, int):
            return cls(text)
        return cls[text.strip().upper()]


@dataclass(frozen=True)
class ClassLimits:
    """Limits in minor units; None means unlimited."""

    wallet_class: WalletClass
    identification: str
    balance_cap: int | None
    single_payment: int | None
    daily: int | None
    annual: int | None


@dataclass(frozen=True)
class Policy:
    classes: dict[WalletClass, ClassLimits]

    def limits(self, wallet_class: WalletClass) -> ClassLimits:
        return self.classes[wallet_class]


def load_policy(path: Path | str | None, decimals: int) -> Policy:
    file = Path(path) if path else DEFAULT_POLICY_FILE
    data = tomllib.loads(file.read_text())
    scale = 10**decimals

    def minor(section: dict, name: str) -> int | None:
        value = section.get(name)
        if value is None:
            return None
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{file}: classes.{name} must be a non-negative integer")
        return value * scale

    classes = {}
    for name, section in data["classes"].items():
        wallet_class = WalletClass.parse(name)
        classes[wallet_class] = ClassLimits(
            wallet_class=wallet_class,
            identification=section.get("identification", ""),
            balance_cap=minor(section, "balance_cap"),
            single_payment=minor(section, "single_payment"),
            daily=minor(section, "daily"),
            annual=minor(section, "annual"),
        )
    missing = set(WalletClass) - set(classes)
    if missing:
        raise ValueError(f"{file}: classes missing: {sorted(c.name for c in missing)}")
    return Policy(classes=classes)
