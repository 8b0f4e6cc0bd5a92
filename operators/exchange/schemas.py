"""Wire types of the exchange area: signed load, unload and cash withdrawal orders, staff
deposit credits.
Strict models: see `operators.schemas`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from operators.schemas import AmountField, NonceField, Strict, WalletIdField


class LoadOrder(Strict):
    type: Literal["load"]
    wallet: str = WalletIdField
    amount: int = AmountField
    currency: str = Field(min_length=3, max_length=3)
    nonce: str = NonceField
    created_at: str


class UnloadOrder(Strict):
    type: Literal["unload"]
    wallet: str = WalletIdField
    amount: int = AmountField
    currency: str = Field(min_length=3, max_length=3)
    nonce: str = NonceField
    created_at: str


class CashWithdrawalOrder(Strict):
    """The holder's consent to a cash withdrawal; staff submit it at the counter."""

    type: Literal["cash_withdrawal"]
    wallet: str = WalletIdField
    amount: int = AmountField
    currency: str = Field(min_length=3, max_length=3)
    nonce: str = NonceField
    created_at: str


class SignedLoad(Strict):
    order: LoadOrder
    signature: str = Field(min_length=80, max_length=100)


class SignedUnload(Strict):
    order: UnloadOrder
    signature: str = Field(min_length=80, max_length=100)


class DepositCredit(Strict):
    amount: int = AmountField


class SignedCashWithdrawal(Strict):
    order: CashWithdrawalOrder
    signature: str = Field(min_length=80, max_length=100)
