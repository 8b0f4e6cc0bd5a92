"""Wire types of the registration centre."""

from __future__ import annotations

from pydantic import Field

from central_bank.schemas import Amount, Strict


class IssueRequest(Strict):
    amount: int = Amount


class RedeemRequest(Strict):
    serials: list[str] = Field(min_length=1, max_length=1000)
    amount: int = Amount


class SplitRequest(Strict):
    serials: list[str] = Field(min_length=1, max_length=1000)
    outputs: list[int] = Field(min_length=1, max_length=100)


class SettleRequest(Strict):
    payee_operator: str = Field(pattern=r"^[A-Z0-9]{4}$")
    amount: int = Amount
    serials: list[str] = Field(min_length=1, max_length=1000)
    reference: str = Field(min_length=1, max_length=100)
