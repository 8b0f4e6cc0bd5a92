"""The operator's holdings (staff `GET /v1/admin/vault`): where its digital currency is held,
summed by account kind, value locked in an escrow and earmarked in a voucher included; the
parts add up to the circulation it obtained from the central bank (-tokens_held)."""

from __future__ import annotations

from typing import Any

from tests.clocks import operator_clock
from tests.helpers import CODES, drain
from tests.programmable.escrow_helpers import at
from tests.programmable.voucher_helpers import programme

PARTS = ("wallets", "escrows", "vouchers", "offline_purses", "vault_float", "in_transit")


def test_holdings_show_escrows_and_vouchers_and_sum_to_circulation(network: Any) -> None:
    clock = operator_clock(network)
    payer = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    payee = network.open_wallet("BKA1")
    holder = network.open_wallet("BKA1")
    payer.create_escrow(payee.wallet_id, 300_00, deadline=at(clock, 3600), memo="sofa")
    p = programme(clock, payer)
    payer.grant_voucher(p.programme_id, holder.wallet_id, 80_00)
    drain(network)

    for code in CODES:
        vault = network.staff(code).request("GET", "/v1/admin/vault")
        holdings = vault["holdings"]
        assert set(holdings) == set(PARTS), holdings
        assert all(isinstance(holdings[k], int) for k in PARTS), holdings
        assert sum(holdings[k] for k in PARTS) == -vault["accounts"]["tokens_held"], vault
        assert holdings["vault_float"] == vault["accounts"]["vault_float"]
    bka1 = network.staff("BKA1").request("GET", "/v1/admin/vault")["holdings"]
    assert bka1["escrows"] == 300_00 and bka1["vouchers"] == 80_00, bka1
    assert bka1["wallets"] >= 1_000_00 - 300_00 - 80_00, bka1
