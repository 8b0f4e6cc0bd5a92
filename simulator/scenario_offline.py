"""Scenario files, offline use: the `[offline]` section and the `network_down` event.

    [offline]
    share = 0.3                 # share of payments made offline while the network is up
    devices = 1.0               # share of households with a device (merchants all have one)
    sync_delay = { distribution = "exponential", mean = "12h" }
    compromised = 0.02          # share of households' devices that are compromised
    attack = "clone"            # "clone" | "rollback"
    purse_cap = 500             # one amount, or per class: { IV = 500, II = 2_000 }
    fund = "cap"                # purse funded up to this at registration ("cap" = the cap)
    top_up = "sync"             # "sync": topped back up after each sync; "never"

    [[events]]
    at = "3d"
    kind = "network_down"       # customers have no network: every payment that can be made
    length = "2d"               # offline is, nothing syncs, nothing is funded

Amounts are currency units, durations as everywhere in the file (`simulator/scenario_values.py`).
The models are strict and frozen like the rest of the scenario; `simulator/scenario.py` holds
them as `Scenario.offline` and as one more kind of event. How the engine uses them:
`simulator/offline.py`.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from simulator.scenario_values import (
    WALLET_CLASSES,
    PositiveSeconds,
    ScenarioModel,
    Seconds,
    Share,
    fail_at,
    to_minor,
)

SYNC_DISTRIBUTIONS: Final = ("exponential", "lognormal", "fixed")
ATTACKS: Final = ("clone", "rollback")


# --- values --------------------------------------------------------------------------------


def _class_name(value: object) -> str:
    if isinstance(value, str) and value.strip().upper() in WALLET_CLASSES:
        return value.strip().upper()
    raise PydanticCustomError(
        "wallet_class",
        f"unknown wallet class {value!r} (expected one of {', '.join(WALLET_CLASSES)})",
    )


def _positive_minor(value: object, where: str = "") -> int:
    minor = to_minor(value)
    if minor <= 0:
        raise PydanticCustomError("positive", f"{where}must be greater than 0")
    return minor


def _per_class(value: object) -> dict[str, int] | None:
    """One amount for every class, or a table class -> amount; minor units per class name."""
    if value is None:
        return None
    if isinstance(value, dict):
        if not value:
            raise PydanticCustomError("per_class", "needs at least one wallet class")
        out: dict[str, int] = {}
        for key, amount in value.items():
            name = _class_name(key)
            out[name] = _positive_minor(amount, f"{name}: ")
        return out
    amount = _positive_minor(value)
    return dict.fromkeys(WALLET_CLASSES, amount)


def _fund(value: object) -> int | None:
    if value == "cap":
        return None
    if isinstance(value, str):
        raise PydanticCustomError("fund", f'expected an amount or "cap", got {value!r}')
    return _positive_minor(value)


PerClassMoney = Annotated[dict[str, int] | None, BeforeValidator(_per_class)]
FundAmount = Annotated[int | None, BeforeValidator(_fund)]  # None: up to the purse cap


# --- sync delays ---------------------------------------------------------------------------


class ExponentialDelay(ScenarioModel):
    distribution: Literal["exponential"]
    mean: PositiveSeconds


class LognormalDelay(ScenarioModel):
    distribution: Literal["lognormal"]
    mean: PositiveSeconds
    sigma: Annotated[float, Field(gt=0.0, le=5.0, allow_inf_nan=False)] = 1.0


class FixedDelay(ScenarioModel):
    distribution: Literal["fixed"]
    value: Seconds


SyncDelay = Annotated[
    ExponentialDelay | LognormalDelay | FixedDelay, Field(discriminator="distribution")
]


def _default_delay() -> ExponentialDelay:
    return ExponentialDelay(distribution="exponential", mean=6 * 3600)


# --- [offline] -----------------------------------------------------------------------------


class Offline(ScenarioModel):
    """Offline use: devices (secure elements) registered to wallets, who pays offline, how
    long devices stay offline, and how many are compromised."""

    share: Share = 0.0
    devices: Share = 1.0
    sync_delay: SyncDelay = Field(default_factory=_default_delay)
    compromised: Share = 0.0
    attack: Literal["clone", "rollback"] = "clone"
    purse_cap: PerClassMoney = None  # None: the policy file's caps
    per_payment: PerClassMoney = None  # None: the policy file's, at most the purse cap
    fund: FundAmount = None
    top_up: Literal["sync", "never"] = "sync"

    @model_validator(mode="after")
    def _per_payment_within_cap(self) -> Offline:
        if self.purse_cap and self.per_payment:
            bad = [
                (("per_payment", name), f"exceeds the purse cap of class {name}", amount)
                for name, amount in self.per_payment.items()
                if name in self.purse_cap and amount > self.purse_cap[name]
            ]
            fail_at("Offline", bad)
        return self


class NetworkDown(ScenarioModel):
    """Customers lose the network for `length`: every payment that can be made offline is,
    the others fail; no device syncs or is funded, no wallet opens, loads or unloads.
    Operators and the central bank still reach each other (settlement goes on)."""

    at: Seconds
    kind: Literal["network_down"]
    length: PositiveSeconds


__all__ = [
    "ATTACKS",
    "SYNC_DISTRIBUTIONS",
    "ExponentialDelay",
    "FixedDelay",
    "LognormalDelay",
    "NetworkDown",
    "Offline",
    "SyncDelay",
]
