"""Scenario files: what a researcher writes to ask the simulator a question, loaded and checked.

A scenario is a TOML file (format reference and examples in `scenarios/README.md`): the
question it asks, the operators and their customers, adoption of the digital currency over
simulated time, substitution of banknotes and deposits, the payments, settlement mode, policy
overrides and timed events (a deposit run, new limits, a switch of settlement mode, an outage).
The engine (`simulator/engine.py`) runs it against the real ledger.

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

import difflib
import hashlib
import math
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

DECIMALS: Final = 2  # minor units per currency unit: 10**DECIMALS
WALLET_CLASSES: Final = ("I", "II", "III", "IV")
EVENT_KINDS: Final = ("deposit_run", "set_limits", "settlement_mode", "outage")
DISTRIBUTIONS: Final = ("lognormal", "uniform", "fixed")
LIMIT_NAMES: Final = ("balance_cap", "single_payment", "daily", "annual")
MAX_OPERATORS: Final = 8
SHARE_TOLERANCE: Final = 1e-6
DAY: Final = 86_400


class ScenarioError(ValueError):
    """A scenario file that cannot be used. `errors` holds (dotted path, message) pairs; the
    message has one line per error, each `<source>: <path>: <message>`."""

    def __init__(self, source: str, errors: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.errors = list(errors)
        lines = [f"{source}: {path}: {msg}" if path else f"{source}: {msg}" for path, msg in errors]
        super().__init__("\n".join(lines))


# --- sentinel ------------------------------------------------------------------------------


class _NotGiven:
    """Marks a limit override the file does not mention (as opposed to "none" = unlimited)."""

    _instance: _NotGiven | None = None

    def __new__(cls) -> _NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "NOT_GIVEN"  # pickles as the module global, so identity survives


NOT_GIVEN: Final[Any] = _NotGiven()


# --- value parsers (file units -> model units) ---------------------------------------------

_DURATION_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY}
_DURATION_RE: Final = re.compile(r"(?:\d+[smhdw])+")
_DURATION_PART_RE: Final = re.compile(r"(\d+)([smhdw])")
_DURATION_HELP: Final = 'whole seconds or a number with a unit s, m, h, d, w, e.g. "15m", "1d"'


def parse_duration(value: object) -> int:
    """A duration from the file (int seconds or "30s", "15m", "6h", "1d", "2w", "1d12h") in
    seconds. Refuses negatives, fractions and anything else."""
    if isinstance(value, bool):
        raise PydanticCustomError("duration", f"expected a duration ({_DURATION_HELP})")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        text = value.strip().replace(" ", "").lower()
        if text.isdigit():
            seconds = int(text)
        elif _DURATION_RE.fullmatch(text):
            seconds = sum(
                int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART_RE.findall(text)
            )
        else:
            raise PydanticCustomError(
                "duration", f"bad duration {value!r} (expected {_DURATION_HELP})"
            )
    else:
        raise PydanticCustomError("duration", f"expected a duration ({_DURATION_HELP})")
    if seconds < 0:
        raise PydanticCustomError("duration", "must not be negative")
    return seconds


def format_duration(seconds: int) -> str:
    """Seconds as the file would write them: 2592000 -> "30d", 5400 -> "1h30m"."""
    if seconds <= 0:
        return f"{seconds}s"
    parts = []
    for unit, size in (("w", 7 * DAY), ("d", DAY), ("h", 3600), ("m", 60), ("s", 1)):
        if unit == "w" and seconds % size:
            continue  # "10d" reads better than "1w3d"
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def to_minor(value: object) -> int:
    """An amount in currency units from the file (int or float) in minor units, rounded
    half-up to the cent. Refuses negatives, NaN, infinity, booleans and strings."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "amount", "expected an amount in currency units (a number, e.g. 2000 or 12.50)"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("amount", "expected a finite amount")
    try:
        units = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    except InvalidOperation:  # pragma: no cover - repr of a finite float always parses
        raise PydanticCustomError("amount", "not an amount") from None
    if units < 0:
        raise PydanticCustomError("amount", "must not be negative")
    minor = (units * 10**DECIMALS).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(minor)


def _limit_amount(value: object) -> int | None:
    if value == "none":
        return None
    if isinstance(value, str):
        raise PydanticCustomError(
            "limit", f'expected an amount or "none" (unlimited), got {value!r}'
        )
    return to_minor(value)


def _positive(value: int) -> int:
    if value <= 0:
        raise PydanticCustomError("positive", "must be greater than 0")
    return value


def _wallet_class(value: object) -> str:
    if isinstance(value, str) and value.strip().upper() in WALLET_CLASSES:
        return value.strip().upper()
    raise PydanticCustomError(
        "wallet_class",
        f"unknown wallet class {value!r} (expected one of {', '.join(WALLET_CLASSES)})",
    )


# Field types. Amounts: int minor units. Durations: int seconds.
Money = Annotated[int, BeforeValidator(to_minor)]
PositiveMoney = Annotated[int, BeforeValidator(to_minor), AfterValidator(_positive)]
LimitAmount = Annotated[int | None, BeforeValidator(_limit_amount)]
Seconds = Annotated[int, BeforeValidator(parse_duration)]
PositiveSeconds = Annotated[int, BeforeValidator(parse_duration), AfterValidator(_positive)]
WalletClassName = Annotated[str, BeforeValidator(_wallet_class)]
Share = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]


def _fail(title: str, errors: Iterable[tuple[tuple[str | int, ...], str, object]]) -> None:
    """Raise the given (loc, message, input) errors from inside a validator, each at its own
    field path (pydantic keeps the locations of a ValidationError raised in a validator)."""
    details = [
        InitErrorDetails(type=PydanticCustomError("scenario", msg), loc=loc, input=value)
        for loc, msg, value in errors
    ]
    if details:
        raise ValidationError.from_exception_data(title, details)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# The default of a field whose value is derived from other fields by a model validator (so the
# field's type stays what the engine reads, e.g. `int`, rather than `int | None`).
_DERIVED: Any = None


def _set(model: BaseModel, name: str, value: object) -> None:
    """Fill a derived default on a frozen model during its own validation."""
    model.__dict__[name] = value


# --- [scenario] ------------------------------------------------------------------------------

_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]*")


class Meta(_Model):
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
            _fail(
                "Meta",
                [(("duration",), f"must be a whole multiple of step ({why})", self.duration)],
            )
        return self


# --- [settlement] --------------------------------------------------------------------------


class Settlement(_Model):
    mode: Literal["rtgs", "net"] = "rtgs"
    net_interval: PositiveSeconds = 3600
    net_max_items: Count = 0


# --- [policy] ------------------------------------------------------------------------------


class _LimitOverrides(_Model):
    """Limits given in the file: int minor units, None = unlimited ("none"), NOT_GIVEN = not in
    the file (keep the policy file's value)."""

    balance_cap: LimitAmount = Field(default=NOT_GIVEN)
    single_payment: LimitAmount = Field(default=NOT_GIVEN)
    daily: LimitAmount = Field(default=NOT_GIVEN)
    annual: LimitAmount = Field(default=NOT_GIVEN)

    def given(self) -> dict[str, int | None]:
        """The limits the file sets: name -> minor units, or None for unlimited."""
        return {n: getattr(self, n) for n in LIMIT_NAMES if getattr(self, n) is not NOT_GIVEN}

    @field_serializer(*LIMIT_NAMES)
    def _serialize_limit(self, value: Any) -> int | None:
        return None if value is NOT_GIVEN else value

    @model_serializer(mode="wrap")
    def _drop_not_given(self, handler: Any) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in LIMIT_NAMES:
                if getattr(self, name) is NOT_GIVEN:
                    data.pop(name, None)
        return data


class ClassLimitOverrides(_LimitOverrides):
    pass


class PolicyOverrides(_Model):
    overflow: Literal["refuse", "sweep"] | None = None
    limits: dict[WalletClassName, ClassLimitOverrides] = Field(default_factory=dict)


# --- [[operators]] -------------------------------------------------------------------------

_CODE_RE: Final = re.compile(r"[A-Z][A-Z0-9]{3}")


class WaterMarks(_Model):
    """Vault float water marks, minor units."""

    low: Money
    target: Money
    high: Money

    @model_validator(mode="after")
    def _ordered(self) -> WaterMarks:
        if not self.low < self.target < self.high:
            _fail("WaterMarks", [((), "must have low < target < high", self.model_dump())])
        return self


class OperatorSpec(_Model):
    code: str
    name: str = _DERIVED  # default f"Bank {code}"
    reserves: PositiveMoney
    quota: PositiveMoney
    water_marks: WaterMarks = _DERIVED  # default 1% / 5% / 20% of reserves
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
        _fail("OperatorSpec", bad)
        total = sum(mix.values())
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise PydanticCustomError(
                "class_mix", f"shares must sum to 1 (got {round(total, 6):g})"
            )
        return mix

    @model_validator(mode="after")
    def _defaults(self) -> OperatorSpec:
        if self.households + self.merchants < 1:
            _fail(
                "OperatorSpec",
                [(("households",), "households + merchants must be at least 1", self.households)],
            )
        if self.name is None:
            _set(self, "name", f"Bank {self.code}")
        if self.water_marks is None:
            r = self.reserves
            marks = WaterMarks.model_construct(low=r // 100, target=r * 5 // 100, high=r // 5)
            _set(self, "water_marks", marks)
        return self


# --- [adoption], [substitution] ------------------------------------------------------------


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class Adoption(_Model):
    """Share of households holding a wallet: a logistic curve in simulated time."""

    start: Share = 1.0
    end: Share = 1.0
    midpoint: Seconds = _DERIVED  # default duration / 2 (filled by Scenario)
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


class Substitution(_Model):
    cash_target: Share = 0.0
    deposit_target: Share = 0.0
    speed: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 0.25


# --- [payments] ----------------------------------------------------------------------------


class LognormalAmount(_Model):
    distribution: Literal["lognormal"]
    median: PositiveMoney
    sigma: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    max: PositiveMoney | None = None

    @model_validator(mode="after")
    def _max_over_median(self) -> LognormalAmount:
        if self.max is not None and self.max < self.median:
            _fail("LognormalAmount", [(("max",), "must be at least the median", self.max)])
        return self


class UniformAmount(_Model):
    distribution: Literal["uniform"]
    min: PositiveMoney
    max: PositiveMoney

    @model_validator(mode="after")
    def _ordered(self) -> UniformAmount:
        if self.max < self.min:
            _fail("UniformAmount", [(("max",), "must be at least min", self.max)])
        return self


class FixedAmount(_Model):
    distribution: Literal["fixed"]
    value: PositiveMoney


Amount = Annotated[
    LognormalAmount | UniformAmount | FixedAmount, Field(discriminator="distribution")
]


def _default_amount() -> LognormalAmount:
    return LognormalAmount(distribution="lognormal", median=50, sigma=1.0)


class Payments(_Model):
    rate: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 1.0
    amount: Amount = Field(default_factory=_default_amount)
    to_merchants: Share = 0.7
    cross_operator: Share = 0.2
    merchant_unload: Share = 1.0
    batch_size: Annotated[int, Field(ge=1, le=20_000)] = 2000


# --- [[events]] ----------------------------------------------------------------------------


class _Event(_Model):
    at: Seconds


class DepositRun(_Event):
    kind: Literal["deposit_run"]
    operator: str
    share: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
    over: PositiveSeconds = _DERIVED  # default one step (filled by Scenario)


class SetLimits(_Event, _LimitOverrides):
    kind: Literal["set_limits"]
    wallet_class: WalletClassName
    operator: str | None = None  # None = every operator

    @model_validator(mode="after")
    def _some_limit(self) -> SetLimits:
        if not self.given():
            _fail("SetLimits", [((), f"needs at least one of {', '.join(LIMIT_NAMES)}", self.kind)])
        return self


class SettlementModeSwitch(_Event):
    kind: Literal["settlement_mode"]
    mode: Literal["rtgs", "net"]


class Outage(_Event):
    kind: Literal["outage"]
    operator: str
    length: PositiveSeconds


Event = Annotated[
    DepositRun | SetLimits | SettlementModeSwitch | Outage, Field(discriminator="kind")
]


# --- the scenario --------------------------------------------------------------------------


class Scenario(_Model):
    model_config = ConfigDict(validate_by_alias=True, validate_by_name=True)

    meta: Meta = Field(alias="scenario")
    settlement: Settlement = Field(default_factory=Settlement)
    policy: PolicyOverrides = Field(default_factory=PolicyOverrides)
    operators: list[OperatorSpec] = Field(min_length=1, max_length=MAX_OPERATORS)
    adoption: Adoption = Field(default_factory=Adoption)
    substitution: Substitution = Field(default_factory=Substitution)
    payments: Payments = Field(default_factory=Payments)
    events: list[Event] = Field(default_factory=list)
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
        _fail("Scenario", errors)

        # Derived defaults.
        if self.adoption.midpoint is None:
            _set(self, "adoption", self.adoption.model_copy(update={"midpoint": duration // 2}))
        payment_defaults: dict[str, float] = {}
        if len(codes) == 1 and "cross_operator" not in given:
            payment_defaults["cross_operator"] = 0.0
        if merchants == 0 and "to_merchants" not in given:
            payment_defaults["to_merchants"] = 0.0
        if payment_defaults:
            _set(self, "payments", self.payments.model_copy(update=payment_defaults))
        events = [
            e.model_copy(update={"over": self.meta.step})
            if isinstance(e, DepositRun) and e.over is None
            else e
            for e in self.events
        ]
        _set(self, "events", sorted(events, key=lambda e: e.at))
        return self


# --- loading -------------------------------------------------------------------------------

_TOML_LINE_RE: Final = re.compile(r"\(at line (\d+), column (\d+)\)")


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file. Raises ScenarioError naming the file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(source, [("", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(source, [("", f"cannot read: {exc}")]) from None
    return parse_scenario(text, source=source)


def parse_scenario(text: str, *, source: str = "<scenario>") -> Scenario:
    """Parse and check a scenario from TOML text. Raises ScenarioError naming `source`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_LINE_RE.search(message)
        where = f"line {found.group(1)}" if found else ""
        raise ScenarioError(source, [(where, f"invalid TOML: {message}")]) from None
    if "source_text" in data:  # a model field, but not a key of the file
        raise ScenarioError(source, [("source_text", _unknown_key("source_text", Scenario))])
    try:
        return Scenario.model_validate({**data, "source_text": text})
    except ValidationError as exc:
        raise ScenarioError(source, [_describe(e) for e in exc.errors()]) from None


# --- error messages ------------------------------------------------------------------------


def _file_keys(model: type[BaseModel]) -> list[str]:
    return [
        (field.alias or name) for name, field in model.model_fields.items() if name != "source_text"
    ]


def _unknown_key(key: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return "unknown key"
    close = difflib.get_close_matches(key, _file_keys(model), n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (expected one of {', '.join(_file_keys(model))})"


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and `X | None` down to the type that decides the next path step."""
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _union_member(tp: Any, tag: str) -> type[BaseModel] | None:
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    for member in typing.get_args(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            for field_name in ("kind", "distribution"):
                field = member.model_fields.get(field_name)
                if field is not None and typing.get_args(field.annotation) == (tag,):
                    return member
    return None


def _walk(loc: Sequence[str | int]) -> tuple[str, type[BaseModel] | None]:
    """Turn a pydantic error location into the file's dotted path (list indexes in brackets,
    union tags dropped) and the model that holds the last key (for unknown-key hints)."""
    path = ""
    tp: Any = Scenario
    parent: type[BaseModel] | None = None
    for item in loc:
        tp = _unwrap(tp)
        if isinstance(item, int):
            path += f"[{item}]"
            tp = typing.get_args(tp)[0] if typing.get_origin(tp) is list else None
            continue
        if item == "[key]":
            continue
        member = _union_member(tp, item)
        if member is not None:  # the discriminator's value: not part of the file's path
            tp = member
            continue
        path += f".{item}" if path else item
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            parent = tp
            fields = {(f.alias or n): f for n, f in tp.model_fields.items()}
            field = fields.get(item)
            tp = field.annotation if field is not None else None
        elif typing.get_origin(tp) is dict:
            parent = None
            tp = typing.get_args(tp)[1]
        else:
            parent, tp = None, None
    return path, parent


def _got(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


_TYPE_NAMES: Final = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "list_type": "an array",
}


def _describe(error: Any) -> tuple[str, str]:
    """One pydantic error as (file path, message)."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    path, parent = _walk(error["loc"])
    if kind == "missing":
        return path, "required"
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        return path, _unknown_key(key, parent)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = ctx.get("discriminator", "'kind'").strip("'")
        noun, names = (
            ("event kind", EVENT_KINDS) if field == "kind" else ("distribution", DISTRIBUTIONS)
        )
        path = f"{path}.{field}" if path else field
        if kind == "union_tag_not_found":
            return path, f"required (one of {', '.join(names)})"
        return path, f"unknown {noun} {ctx.get('tag')!r} (expected one of {', '.join(names)})"
    if kind in _TYPE_NAMES:
        return path, f"expected {_TYPE_NAMES[kind]}, got {_got(value)}"
    if kind == "greater_than":
        return path, f"must be greater than {ctx['gt']} (got {_got(value)})"
    if kind == "greater_than_equal":
        return path, f"must be at least {ctx['ge']} (got {_got(value)})"
    if kind == "less_than":
        return path, f"must be less than {ctx['lt']} (got {_got(value)})"
    if kind == "less_than_equal":
        return path, f"must be at most {ctx['le']} (got {_got(value)})"
    if kind == "finite_number":
        return path, f"must be a finite number (got {_got(value)})"
    if kind == "too_short":
        return (
            path,
            f"needs at least {ctx['min_length']} entr{'y' if ctx['min_length'] == 1 else 'ies'}",
        )
    if kind == "too_long":
        return path, f"at most {ctx['max_length']} entries (got {ctx.get('actual_length')})"
    if kind == "literal_error":
        return path, f"expected {ctx.get('expected')}, got {_got(value)}"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return path, message


__all__ = [
    "DECIMALS",
    "EVENT_KINDS",
    "NOT_GIVEN",
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
    "ScenarioError",
    "SetLimits",
    "Settlement",
    "SettlementModeSwitch",
    "Substitution",
    "UniformAmount",
    "WaterMarks",
    "load_scenario",
    "format_duration",
    "parse_duration",
    "parse_scenario",
    "to_minor",
]
