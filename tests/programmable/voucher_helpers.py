"""Helpers of the voucher tests: a programme with its merchants, signed orders, the audits
(vouchers counted in the vault invariant, programme totals the sums of their vouchers)."""

from __future__ import annotations

from typing import Any

from tests.clocks import ShiftedClock
from tests.helpers import CODES, drain
from tests.programmable.escrow_helpers import at
from wallets.orders import sign_order, voucher_payment_order


def set_category(network: Any, wallet: Any, category: str | None) -> dict[str, Any]:
    code = wallet.wallet_id[:4]
    answer: dict[str, Any] = network.staff(code).request(
        "PUT", f"/v1/admin/wallets/{wallet.wallet_id}/merchant-category", {"category": category}
    )
    return answer


def programme(
    clock: ShiftedClock, issuer: Any, *, seconds: float = 3600, per_holder: int = 100_00, **kw: Any
) -> Any:
    return issuer.create_programme(
        name=kw.pop("name", "food aid"),
        categories=kw.pop("categories", ["groceries"]),
        per_holder=per_holder,
        expires_at=at(clock, seconds),
        **kw,
    )


def signed_voucher_payment(
    wallet: Any, payee: str, amount: int, programme_id: str, **kw: Any
) -> dict[str, Any]:
    order = voucher_payment_order(
        payer=wallet.wallet_id,
        payee=payee,
        amount=amount,
        programme=programme_id,
        currency="CNY",
        **kw,
    )
    return sign_order(wallet.key, order)


def audit_vouchers(network: Any) -> dict[str, dict[str, Any]]:
    """Drain the outboxes; the central bank's and every operator's audits pass (voucher checks
    included), vouchers counted as CBDC. The operators' reports."""
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
            + report["vouchers"]
        )
        assert held == report["vault_token_value"]
        names = {c["name"] for c in report["checks"]}
        assert f"{code}: vouchers: accounts != granted - spent - returned" in names
        reports[code] = report
    return reports
