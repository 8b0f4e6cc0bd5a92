"""The wallet-class policy: limits per class of controllable anonymity, loaded from TOML."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

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


EVIDENCE_KINDS = ("phone", "name", "id_number", "bank_account", "in_person")


@dataclass(frozen=True)
class AmlRules:
    """Thresholds of the AML monitor (amounts in minor units, windows in minutes)."""

    large_value: int
    structuring_ratio: float
    structuring_count: int
    structuring_window_minutes: int
    velocity_count: int
    velocity_window_minutes: int
    fan_count: int
    fan_window_minutes: int
    load_unload_ratio: float
    load_unload_window_minutes: int
    load_unload_min: int


@dataclass(frozen=True)
class Uniqueness:
    """How many wallets one piece of evidence may back at one operator (None: no limit)."""

    wallets_per_id_per_class: int | None
    class_iv_per_phone: int | None


@dataclass(frozen=True)
class Policy:
    classes: dict[WalletClass, ClassLimits]
    evidence: dict[WalletClass, tuple[str, ...]]
    overflow: str  # "refuse" | "sweep"
    aml: AmlRules
    uniqueness: Uniqueness = Uniqueness(wallets_per_id_per_class=1, class_iv_per_phone=1)

    def limits(self, wallet_class: WalletClass | int) -> ClassLimits:
        return self.classes[wallet_class]  # type: ignore[index]  # an IntEnum: ints look up

    def required_evidence(self, wallet_class: WalletClass) -> tuple[str, ...]:
        return self.evidence[wallet_class]


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
    evidence: dict[WalletClass, tuple[str, ...]] = {}
    for name, kinds in data.get("evidence", {}).items():
        unknown = set(kinds) - set(EVIDENCE_KINDS)
        if unknown:
            raise ValueError(f"{file}: evidence.{name}: unknown kinds {sorted(unknown)}")
        evidence[WalletClass.parse(name)] = tuple(kinds)
    for wallet_class in WalletClass:
        evidence.setdefault(wallet_class, ("phone",))
    overflow = data.get("balance_cap", {}).get("overflow", "refuse")
    if overflow not in ("refuse", "sweep"):
        raise ValueError(f"{file}: balance_cap.overflow must be 'refuse' or 'sweep'")
    a = data.get("aml", {})
    aml = AmlRules(
        large_value=int(a.get("large_value", 50_000)) * scale,
        structuring_ratio=float(a.get("structuring_ratio", 0.9)),
        structuring_count=int(a.get("structuring_count", 3)),
        structuring_window_minutes=int(a.get("structuring_window_minutes", 1440)),
        velocity_count=int(a.get("velocity_count", 20)),
        velocity_window_minutes=int(a.get("velocity_window_minutes", 10)),
        fan_count=int(a.get("fan_count", 8)),
        fan_window_minutes=int(a.get("fan_window_minutes", 60)),
        load_unload_ratio=float(a.get("load_unload_ratio", 0.8)),
        load_unload_window_minutes=int(a.get("load_unload_window_minutes", 30)),
        load_unload_min=int(a.get("load_unload_min", 1_000)) * scale,
    )
    u = data.get("uniqueness", {})

    def at_most(name: str) -> int | None:
        value = u.get(name, 1)
        if value == 0:
            return None  # 0 switches the limit off (a researcher's choice, see policy.toml)
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{file}: uniqueness.{name} must be a non-negative integer")
        return value

    uniqueness = Uniqueness(
        wallets_per_id_per_class=at_most("wallets_per_id_per_class"),
        class_iv_per_phone=at_most("class_iv_per_phone"),
    )
    return Policy(
        classes=classes, evidence=evidence, overflow=overflow, aml=aml, uniqueness=uniqueness
    )


def with_overrides(
    policy: Policy,
    *,
    overflow: str | None = None,
    uniqueness: Uniqueness | None = None,
    **aml: Any,
) -> Policy:
    """A copy of `policy` with some settings changed (scenarios and tests)."""
    from dataclasses import replace

    return replace(
        policy,
        overflow=overflow or policy.overflow,
        aml=replace(policy.aml, **aml) if aml else policy.aml,
        uniqueness=uniqueness or policy.uniqueness,
    )
