"""Problem details name amounts for people: major units with the currency ("10.00 CNY"), the
way the wallet page and the CLI show them; machine fields (`limit`) stay minor units."""

from __future__ import annotations

from typing import Any

from cbdc.money import format_amount
from tests.central_bank_api.helpers import issue, operator_client, position
from tests.helpers import refused


def cny(minor: int) -> str:
    return format_amount(minor, 2, "CNY")


def test_wallet_refusals_name_amounts_in_major_units(network: Any) -> None:
    wallet = network.open_wallet("BKA1", deposit=3_000, load=1_000)
    payee = network.open_wallet("BKA1")
    cross_payee = network.open_wallet("BKB1")
    for to in (payee, cross_payee):
        problem = refused(lambda to=to: wallet.pay(to.wallet_id, 1_001), 422, "insufficient_funds")
        assert problem["detail"] == "payer balance 10.00 CNY does not cover 10.01 CNY", problem
    problem = refused(lambda: wallet.unload(1_001), 422, "insufficient_funds")
    assert problem["detail"] == "wallet balance 10.00 CNY does not cover 10.01 CNY", problem
    problem = refused(lambda: wallet.load(2_001), 422, "insufficient_funds")
    assert problem["detail"] == "deposit balance 20.00 CNY does not cover 20.01 CNY", problem
    # class IV: 2,000.00 per payment; the limit itself stays a machine field in minor units
    rich = network.open_wallet("BKA1", deposit=3_000_00, load=3_000_00)
    problem = refused(
        lambda: rich.pay(payee.wallet_id, 2_000_01), 422, "single_payment_limit_exceeded"
    )
    assert problem["detail"] == "class IV allows at most 2,000.00 CNY per payment", problem
    assert problem["limit"] == 2_000_00


def test_central_bank_refusals_name_amounts_in_major_units(network: Any) -> None:
    bka = operator_client(network, "BKA1")
    reserves = position(bka)["reserves"]
    problem = refused(lambda: issue(bka, reserves + 1), 422, "insufficient_reserves")
    assert problem["detail"] == (
        f"reserves {cny(reserves)} do not cover issuance of {cny(reserves + 1)}"
    ), problem
    outstanding = position(bka)["circulation"]
    network.admin.request("PUT", "/v1/admin/operators/BKA1/quota", {"quota": outstanding + 50})
    problem = refused(lambda: issue(bka, 1_00), 422, "issuance_quota_exceeded")
    assert problem["detail"] == (
        f"outstanding {cny(outstanding)} + 1.00 CNY exceeds quota {cny(outstanding + 50)}"
    ), problem
