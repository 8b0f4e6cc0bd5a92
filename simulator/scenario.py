"""Scenario files: what a researcher writes to ask the simulator a question, loaded and checked.

A scenario is a TOML file (format reference and examples in `scenarios/README.md`): the
question it asks, the operators and their customers, adoption of the digital currency over
simulated time, substitution of banknotes and deposits, the payments, settlement mode, policy
overrides and timed events (a deposit run, new limits, a switch of settlement mode, an outage).
The engine (`simulator/engine.py`) runs it against the real ledger. This module holds the
models; `simulator/scenario_values.py` the units and field types; `simulator/scenario_loading.py`
reading a file and the error messages.

The file speaks the researcher's language and the models speak the ledger's:

- amounts in the file are currency units (`2000`, `12.50`); the models hold integer minor units
  (`DECIMALS` = 2 fixed, rounded half-up to the cent, negative refused);
- durations in the file are whole seconds or strings like `"30s"`, `"15m"`, `"6h"`, `"1d"`,
  `"2w"` (or combined, `"1d12h"`); the models hold int seconds.

Checking is strict because a typo must not pass silently: an unknown key, a value of the wrong
type (`seed = "42"`, `share = true`) or an impossible combination is an error. `ScenarioError`
names the file and every bad field by its dotted path with list indexes, one per line, e.g.
`scenarios/x.toml: operators[1].class_mix: shares must sum to 1 (got 0.9)`.

Models are pydantic (frozen, extra keys forbidden, strict types). Their validators take the
file's units, so build them from TOML data (`parse_scenario`, `load_scenario`), not from
already-converted minor units.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Annotated, Final, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from simulator.scenario_offline import NetworkDown, Offline
from simulator.scenario_programmable import Escrows, Merchants, Stimulus, cross_checks
from simulator.scenario_values import (
    DAY,
    DECIMALS,
    DERIVED,
    LIMIT_NAMES,
    MAX_OPERATORS,
    SHARE_TOLERANCE,
    Count,
    LimitOverrides,
    Money,
    PositiveMoney,
    PositiveSeconds,
    ScenarioModel,
    Seconds,
    Share,
    WalletClassName,
    fail_at,
    format_duration,
    set_derived,
)

# --- [scenario] ------------------------------------------------------------------------------

_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]*")


class Meta(ScenarioModel):
    name: str
    question: str
    description: str = ""
    seed: Count
    duration: PositiveSeconds
    step: PositiveSeconds
    currency: str = "CNY"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value):
            raise PydanticCustomError(
                "name", "must be lowercase letters, digits and '-' (e.g. \"bank-run\")"
            )
        return value

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("question", "must not be empty")
        return value.strip()

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", value):
            raise PydanticCustomError("currency", 'must be 3 uppercase letters (e.g. "CNY")')
        return value

    @model_validator(mode="after")
    def _whole_steps(self) -> Meta:
        if self.duration % self.step:
            duration, step = format_duration(self.duration), format_duration(self.step)
            why = f"{duration} is not a multiple of {step}"
            fail_at(
                "Meta",
                [(("duration",), f"must be a whole multiple of step ({why})", self.duration)],
            )
        return self


# --- [settlement] --------------------------------------------------------------------------


class Settlement(ScenarioModel):
    mode: Literal["rtgs", "net"] = "rtgs"
    net_interval: PositiveSeconds = 3600
    net_max_items: Count = 0


# --- [policy] ------------------------------------------------------------------------------


class ClassLimitOverrides(LimitOverrides):
    pass


class PolicyOverrides(ScenarioModel):
    overflow: Literal["refuse", "sweep"] | None = None
    limits: dict[WalletClassName, ClassLimitOverrides] = Field(default_factory=dict)


# --- [[operators]] -------------------------------------------------------------------------

_CODE_RE: Final = re.compile(r"[A-Z][A-Z0-9]{3}")


class WaterMarks(ScenarioModel):
    """Vault float water marks, minor units."""

    low: Money
    target: Money
    high: Money

    @model_validator(mode="after")
    def _ordered(self) -> WaterMarks:
        if not self.low < self.target < self.high:
            fail_at("WaterMarks", [((), "must have low < target < high", self.model_dump())])
        return self


class OperatorSpec(ScenarioModel):
    code: str
    name: str = DERIVED  # default f"Bank {code}"
    reserves: PositiveMoney
    quota: PositiveMoney
    water_marks: WaterMarks = DERIVED  # default 1% / 5% / 20% of reserves
    households: Count
    merchants: Count
    class_mix: dict[WalletClassName, float] = Field(default_factory=lambda: {"IV": 1.0})
    merchant_class: WalletClassName = "II"
    household_cash: Money = 0
    household_deposit: Money = 0
    merchant_deposit: Money = 0

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not _CODE_RE.fullmatch(value):
            raise PydanticCustomError(
                "code", 'must be 4 characters A-Z or 0-9, the first a letter (e.g. "BKA1")'
            )
        return value

    @field_validator("class_mix")
    @classmethod
    def _mix(cls, mix: dict[str, float]) -> dict[str, float]:
        if not mix:
            raise PydanticCustomError("class_mix", "needs at least one wallet class")
        bad = [
            ((name,), "share must be between 0 and 1", share)
            for name, share in mix.items()
            if not (math.isfinite(share) and 0.0 <= share <= 1.0)
        ]
        fail_at("OperatorSpec", bad)
        total = sum(mix.values())
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise PydanticCustomError(
                "class_mix", f"shares must sum to 1 (got {round(total, 6):g})"
            )
        return mix

    @model_validator(mode="after")
    def _defaults(self) -> OperatorSpec:
        if self.households + self.merchants < 1:
            fail_at(
                "OperatorSpec",
                [(("households",), "households + merchants must be at least 1", self.households)],
            )
        if self.name is None:
            set_derived(self, "name", f"Bank {self.code}")
        if self.water_marks is None:
            r = self.reserves
            marks = WaterMarks.model_construct(low=r // 100, target=r * 5 // 100, high=r // 5)
            set_derived(self, "water_marks", marks)
        return self


# --- [adoption], [substitution] ------------------------------------------------------------


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class Adoption(ScenarioModel):
    """Share of households holding a wallet: a logistic curve in simulated time."""

    start: Share = 1.0
    end: Share = 1.0
    midpoint: Seconds = DERIVED  # default duration / 2 (filled by Scenario)
    steepness: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 0.5  # per day

    def share_at(self, t_seconds: int) -> float:
        """Share of households with a wallet at simulated time t: exactly `start` at t = 0,
        approaching `end`, monotone, inflection at `midpoint`."""
        if self.start == self.end:
            return self.start
        if self.midpoint is None:
            raise ValueError("Adoption.midpoint is not set (build it as part of a Scenario)")
        t = max(t_seconds, 0)
        f0 = _sigmoid(self.steepness * (0 - self.midpoint) / DAY)
        ft = _sigmoid(self.steepness * (t - self.midpoint) / DAY)
        progress = (ft - f0) / (1.0 - f0)  # 0 at t = 0, -> 1 as t -> infinity
        share = self.start + (self.end - self.start) * progress
        low, high = sorted((self.start, self.end))
        return min(max(share, low), high)


class Substitution(ScenarioModel):
    cash_target: Share = 0.0
    deposit_target: Share = 0.0
    speed: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 0.25


# --- [payments] ----------------------------------------------------------------------------


class LognormalAmount(ScenarioModel):
    distribution: Literal["lognormal"]
    median: PositiveMoney
    sigma: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    max: PositiveMoney | None = None

    @model_validator(mode="after")
    def _max_over_median(self) -> LognormalAmount:
        if self.max is not None and self.max < self.median:
            fail_at("LognormalAmount", [(("max",), "must be at least the median", self.max)])
        return self


class UniformAmount(ScenarioModel):
    distribution: Literal["uniform"]
    min: PositiveMoney
    max: PositiveMoney

    @model_validator(mode="after")
    def _ordered(self) -> UniformAmount:
        if self.max < self.min:
            fail_at("UniformAmount", [(("max",), "must be at least min", self.max)])
        return self


class FixedAmount(ScenarioModel):
    distribution: Literal["fixed"]
    value: PositiveMoney


Amount = Annotated[
    LognormalAmount | UniformAmount | FixedAmount, Field(discriminator="distribution")
]


def _default_amount() -> LognormalAmount:
    return LognormalAmount(distribution="lognormal", median=50, sigma=1.0)


class Payments(ScenarioModel):
    rate: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 1.0
    amount: Amount = Field(default_factory=_default_amount)
    to_merchants: Share = 0.7
    cross_operator: Share = 0.2
    merchant_unload: Share = 1.0
    batch_size: Annotated[int, Field(ge=1, le=20_000)] = 2000


# --- [[events]] ----------------------------------------------------------------------------


class _Event(ScenarioModel):
    at: Seconds


class DepositRun(_Event):
    kind: Literal["deposit_run"]
    operator: str
    share: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
    over: PositiveSeconds = DERIVED  # default one step (filled by Scenario)


class SetLimits(_Event, LimitOverrides):
    kind: Literal["set_limits"]
    wallet_class: WalletClassName
    operator: str | None = None  # None = every operator

    @model_validator(mode="after")
    def _some_limit(self) -> SetLimits:
        if not self.given():
            fail_at(
                "SetLimits", [((), f"needs at least one of {', '.join(LIMIT_NAMES)}", self.kind)]
            )
        return self


class SettlementModeSwitch(_Event):
    kind: Literal["settlement_mode"]
    mode: Literal["rtgs", "net"]


class Outage(_Event):
    kind: Literal["outage"]
    operator: str
    length: PositiveSeconds


Event = Annotated[
    DepositRun | SetLimits | SettlementModeSwitch | Outage | NetworkDown,
    Field(discriminator="kind"),
]


# --- the scenario --------------------------------------------------------------------------


class Scenario(ScenarioModel):
    model_config = ConfigDict(validate_by_alias=True, validate_by_name=True)

    meta: Meta = Field(alias="scenario")
    settlement: Settlement = Field(default_factory=Settlement)
    policy: PolicyOverrides = Field(default_factory=PolicyOverrides)
    operators: list[OperatorSpec] = Field(min_length=1, max_length=MAX_OPERATORS)
    adoption: Adoption = Field(default_factory=Adoption)
    substitution: Substitution = Field(default_factory=Substitution)
    payments: Payments = Field(default_factory=Payments)
    events: list[Event] = Field(default_factory=list)
    offline: Offline | None = None  # offline use (simulator/scenario_offline.py)
    # programmable money (simulator/scenario_programmable.py)
    merchants: Merchants | None = None
    stimulus: Stimulus | None = None
    escrows: Escrows | None = None
    source_text: str = Field(default="", repr=False, exclude=True)

    @property
    def steps(self) -> int:
        return self.meta.duration // self.meta.step

    @property
    def decimals(self) -> int:
        return DECIMALS

    @property
    def digest(self) -> str:
        """sha256 (hex) of the scenario file's text."""
        return hashlib.sha256(self.source_text.encode()).hexdigest()

    def operator(self, code: str) -> OperatorSpec:
        for spec in self.operators:
            if spec.code == code:
                return spec
        raise KeyError(code)

    def __eq__(self, other: object) -> bool:  # the same scenario, whatever its comments
        if not isinstance(other, Scenario):
            return NotImplemented
        mine = {k: v for k, v in self.__dict__.items() if k != "source_text"}
        theirs = {k: v for k, v in other.__dict__.items() if k != "source_text"}
        return mine == theirs

    __hash__ = None  # type: ignore[assignment]  # holds dicts and lists

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        errors: list[tuple[tuple[str | int, ...], str, object]] = []
        duration, codes = self.meta.duration, [op.code for op in self.operators]
        for i, code in enumerate(codes):
            if code in codes[:i]:
                errors.append((("operators", i, "code"), f"duplicate operator code {code!r}", code))
        known = set(codes)
        given = self.payments.model_fields_set
        if len(codes) == 1 and self.payments.cross_operator > 0 and "cross_operator" in given:
            errors.append(
                (
                    ("payments", "cross_operator"),
                    "must be 0 with a single operator",
                    self.payments.cross_operator,
                )
            )
        merchants = sum(op.merchants for op in self.operators)
        if merchants == 0 and self.payments.to_merchants > 0 and "to_merchants" in given:
            errors.append(
                (
                    ("payments", "to_merchants"),
                    "must be 0: no operator has merchants",
                    self.payments.to_merchants,
                )
            )
        for i, event in enumerate(self.events):
            if event.at >= duration:
                errors.append(
                    (
                        ("events", i, "at"),
                        f"must be before the end of the run (duration {format_duration(duration)})",
                        event.at,
                    )
                )
            operator = getattr(event, "operator", None)
            if operator is not None and operator not in known:
                errors.append((("events", i, "operator"), f"no operator {operator!r}", operator))
        errors += cross_checks(duration, self.merchants, self.stimulus)
        fail_at("Scenario", errors)

        # Derived defaults.
        if self.adoption.midpoint is None:
            set_derived(
                self, "adoption", self.adoption.model_copy(update={"midpoint": duration // 2})
            )
        payment_defaults: dict[str, float] = {}
        if len(codes) == 1 and "cross_operator" not in given:
            payment_defaults["cross_operator"] = 0.0
        if merchants == 0 and "to_merchants" not in given:
            payment_defaults["to_merchants"] = 0.0
        if payment_defaults:
            set_derived(self, "payments", self.payments.model_copy(update=payment_defaults))
        events = [
            e.model_copy(update={"over": self.meta.step})
            if isinstance(e, DepositRun) and e.over is None
            else e
            for e in self.events
        ]
        set_derived(self, "events", sorted(events, key=lambda e: e.at))
        return self


__all__ = [
    "Adoption",
    "Amount",
    "ClassLimitOverrides",
    "DepositRun",
    "Event",
    "FixedAmount",
    "LognormalAmount",
    "Meta",
    "OperatorSpec",
    "Outage",
    "Payments",
    "PolicyOverrides",
    "Scenario",
    "SetLimits",
    "Settlement",
    "SettlementModeSwitch",
    "Substitution",
    "UniformAmount",
    "WaterMarks",
]
