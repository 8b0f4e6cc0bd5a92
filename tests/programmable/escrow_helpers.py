"""Helpers of the escrow tests: deadlines on the operators' clock, signed escrow orders, the
posts of the escrow routes, the audits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cbdc.clock import iso
from tests.clocks import ShiftedClock
from tests.helpers import CODES, drain
from wallets.orders import escrow_order, escrow_release_order, sign_order


def at(clock: ShiftedClock, seconds: float) -> str:
    """The ISO time `seconds` after the operators' clock's now."""
    return iso(clock.now() + timedelta(seconds=seconds))


def signed_escrow(wallet: Any, payee: str, amount: int, **kw: Any) -> dict[str, Any]:
    order = escrow_order(payer=wallet.wallet_id, payee=payee, amount=amount, currency="CNY", **kw)
    return sign_order(wallet.key, order)


def signed_release(wallet: Any, escrow_id: str, amount: int, **kw: Any) -> dict[str, Any]:
    order = escrow_release_order(escrow=escrow_id, amount=amount, by=wallet.wallet_id, **kw)
    return sign_order(wallet.key, order)


def post(network: Any, code: str, path: str, body: dict[str, Any]) -> Any:
    return network.operator_http[code].post(path, json=body)


def audit_all(network: Any) -> dict[str, dict[str, Any]]:
    """Drain the outboxes; the central bank's and every operator's audits pass (escrow checks
    included) and agree on each operator's tokens. The operators' reports."""
    drain(network)
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["ok"], [c for c in central["checks"] if not c["ok"]]
    reports = {}
    for code in CODES:
        report = network.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], [c for c in report["checks"] if not c["ok"]]
        assert central["operators"][code]["live_token_value"] == report["vault_token_value"]
        held = (
            report["vault_float"]
            + report["wallets"]
            + report["in_transit_total"]
            + report["offline_purses"]
            + report["escrows"]
        )
        assert held == report["vault_token_value"]
        names = {c["name"] for c in report["checks"]}
        assert f"{code}: escrows: accounts != amount - released - refunded" in names
        reports[code] = report
    return reports
