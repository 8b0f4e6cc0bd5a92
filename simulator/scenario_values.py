"""Scenario file values: the units a researcher writes, turned into the units the models hold.

Amounts in the file are currency units (`2000`, `12.50`); the models hold integer minor units
(`DECIMALS` = 2 fixed, rounded half-up to the cent, negative refused). Durations in the file are
whole seconds or strings like `"30s"`, `"15m"`, `"6h"`, `"1d"`, `"2w"` (or combined, `"1d12h"`);
the models hold int seconds. Also here: the annotated field types the models use, their strict
base model, and the limit overrides (a limit the file does not mention is `NOT_GIVEN`, as
opposed to `"none"` = unlimited). The models themselves are in `simulator/scenario.py`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    model_serializer,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

DECIMALS: Final = 2  # minor units per currency unit: 10**DECIMALS
WALLET_CLASSES: Final = ("I", "II", "III", "IV")
EVENT_KINDS: Final = (
    "deposit_run",
    "set_limits",
    "settlement_mode",
    "outage",
    "network_down",
)
DISTRIBUTIONS: Final = ("lognormal", "uniform", "fixed")
LIMIT_NAMES: Final = ("balance_cap", "single_payment", "daily", "annual")
MAX_OPERATORS: Final = 8
SHARE_TOLERANCE: Final = 1e-6
DAY: Final = 86_400

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


def fail_at(title: str, errors: Iterable[tuple[tuple[str | int, ...], str, object]]) -> None:
    """Raise the given (loc, message, input) errors from inside a validator, each at its own
    field path (pydantic keeps the locations of a ValidationError raised in a validator)."""
    details = [
        InitErrorDetails(type=PydanticCustomError("scenario", msg), loc=loc, input=value)
        for loc, msg, value in errors
    ]
    if details:
        raise ValidationError.from_exception_data(title, details)


class ScenarioModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# The default of a field whose value is derived from other fields by a model validator (so the
# field's type stays what the engine reads, e.g. `int`, rather than `int | None`).
DERIVED: Any = None


def set_derived(model: BaseModel, name: str, value: object) -> None:
    """Fill a derived default on a frozen model during its own validation."""
    model.__dict__[name] = value


class LimitOverrides(ScenarioModel):
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


__all__ = [
    "DAY",
    "DECIMALS",
    "DERIVED",
    "DISTRIBUTIONS",
    "EVENT_KINDS",
    "LIMIT_NAMES",
    "MAX_OPERATORS",
    "NOT_GIVEN",
    "SHARE_TOLERANCE",
    "WALLET_CLASSES",
    "Count",
    "LimitAmount",
    "LimitOverrides",
    "Money",
    "PositiveMoney",
    "PositiveSeconds",
    "ScenarioModel",
    "Seconds",
    "Share",
    "WalletClassName",
    "fail_at",
    "format_duration",
    "parse_duration",
    "set_derived",
    "to_minor",
]
