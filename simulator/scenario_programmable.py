"""Scenario files, programmable money: merchant categories, a stimulus, escrows in the mix.

    [merchants]
    categories = { groceries = 0.3, restaurants = 0.2, retail = 0.5 }   # shares of merchants

    [stimulus]
    form = "voucher"            # "money": an ordinary payment; "voucher": a purpose-bound voucher
    at = "1d"                   # when the agency pays it
    amount = 300                # per household (households with a wallet at `at`)
    households = 1.0            # share of those households that receive it
    categories = ["groceries", "restaurants"]   # voucher: where it may be spent
    expires = "30d"             # voucher: valid this long after `at`; unspent value goes back

    [escrows]
    share = 0.1                 # share of payments made as escrows
    release_after = "6h"        # the payer releases them this long after
    deadline = "1d"             # the escrow's deadline, after its creation (> release_after)
    refunded = 0.2              # share never released: back to the payer at the deadline

Amounts are currency units, durations as everywhere in the file (`simulator/scenario_values.py`).
How the engine uses them: `simulator/programmable.py`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from cbdc.merchants import CATEGORIES
from simulator.scenario_values import (
    DAY,
    SHARE_TOLERANCE,
    PositiveMoney,
    PositiveSeconds,
    ScenarioModel,
    Seconds,
    Share,
    fail_at,
)

MAX_EXPIRY = 366 * DAY


def _category(value: object) -> str:
    if isinstance(value, str) and value in CATEGORIES:
        return value
    raise PydanticCustomError(
        "merchant_category",
        f"unknown merchant category {value!r} (expected one of {', '.join(CATEGORIES)})",
    )


Category = Annotated[str, BeforeValidator(_category)]


def _default_categories() -> list[str]:
    return ["groceries", "restaurants"]


class Merchants(ScenarioModel):
    """Merchant categories: each operator's merchants get categories in these shares (the
    first merchants the first category, and so on), registered by the operator's staff and
    published to the central bank's registry, as in production."""

    categories: dict[Category, Share] = Field(min_length=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> Merchants:
        total = sum(self.categories.values())
        if abs(total - 1.0) > SHARE_TOLERANCE:
            fail_at(
                "Merchants", [(("categories",), f"shares must sum to 1 (got {total:g})", total)]
            )
        return self


class Stimulus(ScenarioModel):
    """The same amount paid by an agency to households, as money or as a voucher."""

    form: Literal["money", "voucher"]
    at: Seconds
    amount: PositiveMoney
    households: Share = 1.0
    categories: list[Category] = Field(default_factory=_default_categories, min_length=1)
    expires: PositiveSeconds = 30 * DAY

    @model_validator(mode="after")
    def _checks(self) -> Stimulus:
        errors: list[tuple[tuple[str | int, ...], str, object]] = []
        if self.expires > MAX_EXPIRY:
            errors.append((("expires",), "must be at most 366 days", self.expires))
        if len(set(self.categories)) != len(self.categories):
            errors.append((("categories",), "categories must be distinct", self.categories))
        fail_at("Stimulus", errors)
        return self


class Escrows(ScenarioModel):
    """A share of the payments made as escrows: released by the payer after a delay, or
    (a share of them) never released and given back to the payer at the deadline."""

    share: Share
    release_after: PositiveSeconds = DAY // 4
    deadline: PositiveSeconds = DAY
    refunded: Share = 0.0

    @model_validator(mode="after")
    def _deadline_after_release(self) -> Escrows:
        if self.deadline <= self.release_after:
            fail_at(
                "Escrows",
                [(("deadline",), "must be longer than release_after", self.deadline)],
            )
        if self.deadline > MAX_EXPIRY:
            fail_at("Escrows", [(("deadline",), "must be at most 366 days", self.deadline)])
        return self


def cross_checks(
    duration: int, merchants: Merchants | None, stimulus: Stimulus | None
) -> list[tuple[tuple[str | int, ...], str, object]]:
    """What the sections need of the rest of the scenario."""
    errors: list[tuple[tuple[str | int, ...], str, object]] = []
    if stimulus is None:
        return errors
    if stimulus.at >= duration:
        errors.append((("stimulus", "at"), "must be before the end of the run", stimulus.at))
    if stimulus.form == "voucher":
        shares = merchants.categories if merchants else {}
        if not any(shares.get(c, 0.0) > 0 for c in stimulus.categories):
            errors.append(
                (
                    ("stimulus", "categories"),
                    "no merchant of these categories: give them shares in [merchants] categories",
                    stimulus.categories,
                )
            )
    return errors


__all__ = ["Escrows", "Merchants", "Stimulus", "cross_checks"]
