"""Syncs of honest devices, same operator and across operators, in either order: the payee's
wallet is credited once, the purse pays, nothing is lost, and the audits hold."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tests.helpers import audits_ok, drain
from tests.offline.helpers import balance, fund, purse, register, scalar, sync


def test_same_operator_payee_first_then_payer(network: Any) -> None:
    alice = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    bob = network.open_wallet("BKA1")
    pa, pb = register(network, "BKA1", alice), register(network, "BKA1", bob)
    assert fund(network, "BKA1", pa, 300_00)["purse_balance"] == 300_00
    assert balance(network, "BKA1", alice.wallet_id) == 700_00
    now = network.state("BKA1").ctx.now()
    pb.receive(pa.pay(pb.device_id, bob.wallet_id, 120_00, now), now)
    pb.receive(pa.pay(pb.device_id, bob.wallet_id, 30_00, now), now)

    answer = sync(network, "BKA1", pb)
    assert [r["status"] for r in answer["received"]] == ["settled", "settled"]
    assert answer["device_status"] == "active"
    assert balance(network, "BKA1", bob.wallet_id) == 150_00
    assert purse(network, "BKA1", pa.device_id) == 150_00
    assert pb.view()["unsynced_received"] == []  # the device dropped what the answer carried

    assert len(pa.view()["unsynced_sent"]) == 2
    answer = sync(network, "BKA1", pa)  # the payer's log brings the same transfers
    assert [r["outcome"] for r in answer["sent"]] == ["duplicate", "duplicate"]
    assert answer["purse_balance"] == 150_00
    assert pa.view()["unsynced_sent"] == []
    assert balance(network, "BKA1", bob.wallet_id) == 150_00
    assert scalar(network, "BKA1", "SELECT count(*) FROM offline_double_spends") == 0
    _, reports = audits_ok(network)
    assert reports["BKA1"]["offline_purses"] == 150_00
    assert reports["BKA1"]["offline"]["fraud_losses"] == 0


@pytest.mark.parametrize("first", ["payer", "payee"])
def test_cross_operator_either_order(network: Any, first: str) -> None:
    alice = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    bob = network.open_wallet("BKB1")
    pa, pb = register(network, "BKA1", alice), register(network, "BKB1", bob)
    fund(network, "BKA1", pa, 200_00)
    now = network.state("BKA1").ctx.now()
    pb.receive(pa.pay(pb.device_id, bob.wallet_id, 75_00, now), now)

    if first == "payer":
        sent = sync(network, "BKA1", pa)["sent"]
        assert [r["outcome"] for r in sent] in (["pending_settlement"], ["settled"])
        drain(network)
        assert balance(network, "BKB1", bob.wallet_id) == 75_00
        received = sync(network, "BKB1", pb)["received"]
        assert [r["status"] for r in received] == ["forwarding"]
        drain(network)
        status = scalar(network, "BKB1", "SELECT status FROM offline_claims")
        assert status == "duplicate"  # the payer's operator had it from the payer's sync
    else:
        received = sync(network, "BKB1", pb)["received"]
        assert [r["status"] for r in received] == ["forwarding"]
        drain(network)
        assert scalar(network, "BKB1", "SELECT status FROM offline_claims") == "accepted"
        assert balance(network, "BKB1", bob.wallet_id) == 75_00
        sent = sync(network, "BKA1", pa)["sent"]
        assert [r["outcome"] for r in sent] == ["duplicate"]
        drain(network)
    assert balance(network, "BKB1", bob.wallet_id) == 75_00
    assert purse(network, "BKA1", pa.device_id) == 125_00
    assert balance(network, "BKA1", alice.wallet_id) == 800_00
    _, reports = audits_ok(network)
    assert reports["BKA1"]["in_transit_out"] == 0
    assert reports["BKA1"]["offline"]["claims_forwarding"] == 0
    assert reports["BKB1"]["offline"]["claims_forwarding"] == 0


def test_defund_returns_the_purse_and_joins_the_log(network: Any) -> None:
    from cbdc.db import transaction
    from operators.offline import funding

    alice = network.open_wallet("BKA1", deposit=500_00, load=500_00)
    pa = register(network, "BKA1", alice)
    fund(network, "BKA1", pa, 100_00)
    state = network.state("BKA1")
    signed = pa.defund(40_00, state.ctx.now())
    answer = transaction(
        state.factory,
        lambda s: funding.defund(s, state.ctx, device_id=pa.device_id, signed_transfer=signed),
    )
    assert (answer["outcome"], answer["credited"]) == ("settled", 40_00)
    assert (answer["purse_balance"], answer["wallet_balance"]) == (60_00, 440_00)
    again = transaction(
        state.factory,
        lambda s: funding.defund(s, state.ctx, device_id=pa.device_id, signed_transfer=signed),
    )
    assert (again["outcome"], again["credited"], again["purse_balance"]) == (
        "duplicate",
        40_00,
        60_00,
    )
    assert [r["outcome"] for r in sync(network, "BKA1", pa)["sent"]] == ["duplicate"]
    assert balance(network, "BKA1", alice.wallet_id) == 440_00
    audits_ok(network)


def test_cross_operator_under_net_settlement(network: Any) -> None:
    from tests.net_settlement.helpers import drained

    for code in ("BKA1", "BKB1"):
        network.state(code).ctx.settlement_mode = "net"
    alice = network.open_wallet("BKA1", deposit=300_00, load=300_00)
    bob = network.open_wallet("BKB1")
    pa, pb = register(network, "BKA1", alice), register(network, "BKB1", bob)
    fund(network, "BKA1", pa, 100_00)
    now = network.state("BKA1").ctx.now()
    pb.receive(pa.pay(pb.device_id, bob.wallet_id, 60_00, now), now)
    assert [r["outcome"] for r in sync(network, "BKA1", pa)["sent"]] == ["pending_settlement"]
    assert scalar(network, "BKA1", "SELECT count(*) FROM net_items WHERE status = 'open'") == 1
    _, reports = audits_ok(network)  # awaiting the clearing cycle: in_transit_out matches it
    assert reports["BKA1"]["in_transit_out"] == 60_00
    drained(network)
    assert balance(network, "BKB1", bob.wallet_id) == 60_00
    assert [r["status"] for r in sync(network, "BKB1", pb)["received"]] == ["forwarding"]
    drained(network)
    assert scalar(network, "BKB1", "SELECT status FROM offline_claims") == "duplicate"
    assert balance(network, "BKB1", bob.wallet_id) == 60_00
    _, reports = audits_ok(network)
    assert reports["BKA1"]["in_transit_out"] == 0


def test_a_payee_wallet_that_cannot_take_it_returns_it_to_the_payer(network: Any) -> None:
    alice = network.open_wallet("BKA1", deposit=300_00, load=300_00)
    bob = network.open_wallet("BKA1")
    pa, pb = register(network, "BKA1", alice), register(network, "BKA1", bob)
    fund(network, "BKA1", pa, 100_00)
    now = network.state("BKA1").ctx.now()
    pb.receive(pa.pay(pb.device_id, bob.wallet_id, 30_00, now), now)
    with network.state("BKA1").engine.begin() as conn:
        conn.execute(
            text("UPDATE wallets SET status = 'frozen' WHERE id = :w"), {"w": bob.wallet_id}
        )
    answer = sync(network, "BKA1", pb)
    assert [r["status"] for r in answer["received"]] == ["returned"]
    assert balance(network, "BKA1", bob.wallet_id) == 0
    assert balance(network, "BKA1", alice.wallet_id) == 230_00  # 200.00 + 30.00 back
    assert purse(network, "BKA1", pa.device_id) == 70_00
    failure = scalar(network, "BKA1", "SELECT failure FROM orders WHERE kind = 'offline_payment'")
    assert failure == "wallet_not_active"
    audits_ok(network)


def test_no_revocation_list_no_sync(network: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cbdc.http import RemoteUnavailable
    from tests.helpers import assert_problem

    alice = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    pa = register(network, "BKA1", alice)
    central_bank = network.state("BKA1").ctx.central_bank

    def unreachable() -> Any:
        raise RemoteUnavailable("central bank down")

    monkeypatch.setattr(central_bank, "offline_revocations", unreachable)
    now = network.state("BKA1").ctx.now()
    response = network.operator_http["BKA1"].post(
        f"/v1/offline/devices/{pa.device_id}/sync", json=pa.sync_batch(now)
    )
    assert_problem(response, 503, "offline_revocations_unavailable")
    monkeypatch.undo()
    listed = alice.client.request("GET", "/v1/offline/revocations")
    assert listed["document"]["type"] == "offline-revocation-list"
    handed = sync(network, "BKA1", pa)["revocations"]["document"]
    assert (
        (handed["version"], handed["revoked"])
        == (0, [])
        == (
            listed["document"]["version"],
            listed["document"]["revoked"],
        )
    )
