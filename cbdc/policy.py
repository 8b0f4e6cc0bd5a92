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
class OfflineLimits:
    """What a device wallet of a class may do offline (amounts in minor units): the largest
    payment, the most its purse may hold, and how many payments or days it may go before it
    must sync with its operator."""

    per_payment: int
    purse_cap: int
    max_payments: int
    max_days: int


# minor units per currency unit are applied by load_policy; these are in currency units
DEFAULT_OFFLINE: dict[str, tuple[int, int, int, int]] = {
    "I": (5_000, 10_000, 100, 7),
    "II": (2_000, 5_000, 50, 7),
    "III": (1_000, 2_000, 30, 5),
    "IV": (500, 1_000, 20, 3),
}


@dataclass(frozen=True)
class Policy:
    classes: dict[WalletClass, ClassLimits]
    evidence: dict[WalletClass, tuple[str, ...]]
    overflow: str  # "refuse" | "sweep"
    aml: AmlRules
    uniqueness: Uniqueness = Uniqueness(wallets_per_id_per_class=1, class_iv_per_phone=1)
    offline: dict[WalletClass, OfflineLimits] | None = None

    def offline_limits(self, wallet_class: WalletClass | int) -> OfflineLimits:
        """The offline limits of a device registered to a wallet of `wallet_class`."""
        assert self.offline is not None, "load_policy fills the offline limits"
        return self.offline[WalletClass(wallet_class)]

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
        classes=classes,
        evidence=evidence,
        overflow=overflow,
        aml=aml,
        uniqueness=uniqueness,
        offline=_offline_limits(file, data.get("offline", {}), scale),
    )


def _offline_limits(
    file: Path, data: dict[str, Any], scale: int
) -> dict[WalletClass, OfflineLimits]:
    limits: dict[WalletClass, OfflineLimits] = {}
    for wallet_class in WalletClass:
        per_payment, purse_cap, max_payments, max_days = DEFAULT_OFFLINE[wallet_class.name]
        section = data.get(wallet_class.name, {})
        values = {
            "per_payment": section.get("per_payment", per_payment),
            "purse_cap": section.get("purse_cap", purse_cap),
            "max_payments": section.get("max_payments", max_payments),
            "max_days": section.get("max_days", max_days),
        }
        for name, value in values.items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"{file}: offline.{wallet_class.name}.{name} must be a positive integer"
                )
        if values["per_payment"] > values["purse_cap"]:
            raise ValueError(f"{file}: offline.{wallet_class.name}: per_payment exceeds purse_cap")
        limits[wallet_class] = OfflineLimits(
            per_payment=values["per_payment"] * scale,
            purse_cap=values["purse_cap"] * scale,
            max_payments=values["max_payments"],
            max_days=values["max_days"],
        )
    return limits


def with_overrides(
    policy: Policy,
    *,
    overflow: str | None = None,
    uniqueness: Uniqueness | None = None,
    offline: dict[WalletClass, OfflineLimits] | None = None,
    **aml: Any,
) -> Policy:
    """A copy of `policy` with some settings changed (scenarios and tests)."""
    from dataclasses import replace

    return replace(
        policy,
        overflow=overflow or policy.overflow,
        aml=replace(policy.aml, **aml) if aml else policy.aml,
        uniqueness=uniqueness or policy.uniqueness,
        offline=offline or policy.offline,
    )
