"""Helpers of the scheduled-payment tests: signing schedule orders, reading a schedule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cbdc.clock import iso
from tests.clocks import ShiftedClock
from wallets.orders import schedule_order, sign_order


def at(clock: ShiftedClock, seconds: float) -> str:
    """The ISO time `seconds` after the operators' clock's now."""
    return iso(clock.now() + timedelta(seconds=seconds))


def signed_schedule(wallet: Any, payee: str, amount: int, **kw: Any) -> dict[str, Any]:
    order = schedule_order(payer=wallet.wallet_id, payee=payee, amount=amount, currency="CNY", **kw)
    return sign_order(wallet.key, order)


def post_schedule(network: Any, code: str, signed: dict[str, Any]) -> Any:
    return network.operator_http[code].post("/v1/schedules", json=signed)
