"""Wire types of the web area. Strict models: see `operators.schemas`."""

from __future__ import annotations

from pydantic import Field

from operators.schemas import Strict

# The most one demo deposit credits, in minor units (100,000.00 with two decimals): enough for
# any class's limits, small enough that a demo network's figures stay readable.
DEMO_DEPOSIT_MAX = 10_000_000


class DemoDeposit(Strict):
    amount: int = Field(ge=1, le=DEMO_DEPOSIT_MAX, description="minor units")


class DemoDepositDone(Strict):
    wallet_id: str
    customer_id: int
    amount: int
    deposit_balance: int
