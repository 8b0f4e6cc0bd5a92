"""Net settlement's flow: only the net moves, even pairs, returns, idempotent steps."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from cbdc.addresses import make_wallet_id
from central_bank.clearing import stats as clearing_stats
from central_bank.clearing import submissions as clearing_submissions
from operators.settlement import netting
from tests.net_settlement.helpers import (
    CODES,
    as_operator,
    cb_state,
    close,
    conserved,
    cycle,
    drained,
    operations,
    problem,
    settle_all,
    stats,
    submit_all,
)

# ------------------------------------------------------------------ the flow


def test_payments_both_ways_settle_only_the_net(net: Any) -> None:
    alice = net.open_wallet("BKA1", wallet_class="II", deposit=50_000_00, load=50_000_00)
    bob = net.open_wallet("BKB1", wallet_class="II", deposit=50_000_00, load=50_000_00)
    carol = net.open_wallet("BKB1")
    dave = net.open_wallet("BKA1")
    conserved(net)
    before = net.admin.request("GET", "/v1/admin/audit")["operators"]

    a_to_b = [alice.pay(carol.wallet_id, x) for x in (1_000_00, 2_000_00, 500_00)]
    b_to_a = [bob.pay(dave.wallet_id, 1_200_00)]
    for receipt in a_to_b + b_to_a:
        assert (receipt.status, receipt.route) == ("pending_settlement", "cross")
    assert carol.balance().balance == 0 and dave.balance().balance == 0
    assert alice.balance().balance == 50_000_00 - 3_500_00
    reports = conserved(net)  # in flight: in in_transit_out, counted as net items
    assert reports["BKA1"]["net_in_flight"] == reports["BKA1"]["in_transit_out"] == 3_500_00
    assert reports["BKB1"]["net_in_flight"] == 1_200_00
    assert "settlement" not in operations(net)

    submit_all(net)
    position = net.admin.request("GET", "/v1/stats/money-supply")["clearing"]
    assert (position["items_waiting"], position["gross_waiting"]) == (4, 4_700_00)
    closed = close(net)
    assert closed is not None and closed["trigger"] == "manual"
    (pair,) = closed["pairs"]
    assert (pair["operator_a"], pair["operator_b"]) == ("BKA1", "BKB1")
    assert (pair["gross_ab"], pair["gross_ba"], pair["net"]) == (3_500_00, 1_200_00, 2_300_00)
    assert (pair["debtor"], pair["creditor"], pair["status"]) == ("BKA1", "BKB1", "pending")
    assert close(net) is None  # nothing else waiting

    settle_all(net)
    assert carol.balance().balance == 3_500_00
    assert dave.balance().balance == 1_200_00
    for receipt in a_to_b:
        assert alice.payment(receipt.payment_id).status == "delivered"
    assert bob.payment(b_to_a[0].payment_id).status == "delivered"
    # the payee sees the payer's alias, as under RTGS
    (item,) = dave.history().items
    assert item.kind == "settlement_in" and item.counterparty.startswith("anon-")
    assert bob.wallet_id not in item.counterparty

    # only the net moved at the central bank: one operation, no RTGS settlement
    ops = operations(net)
    assert ops["net_settlement"] == {"count": 1, "amount": 2_300_00}
    assert "settlement" not in ops
    after = net.admin.request("GET", "/v1/admin/audit")["operators"]
    assert after["BKB1"]["live_token_value"] - before["BKB1"]["live_token_value"] == 2_300_00
    assert before["BKA1"]["live_token_value"] - after["BKA1"]["live_token_value"] == 2_300_00

    # liquidity used == |gross_ab - gross_ba|, against the gross RTGS would have needed
    report = stats(net)
    a, b = report["operators"]["BKA1"], report["operators"]["BKB1"]
    assert (a["liquidity_used"], a["rtgs_liquidity"], a["liquidity_saved"]) == (
        2_300_00,
        3_500_00,
        1_200_00,
    )
    assert (b["liquidity_used"], b["rtgs_liquidity"], b["net_received"]) == (0, 1_200_00, 2_300_00)
    (stat,) = report["cycles"]
    assert stat["net_settled"] == 2_300_00 and stat["gross"] == 4_700_00
    (pair_stat,) = stat["pairs"]
    assert (pair_stat["gross_ab"], pair_stat["gross_ba"], pair_stat["status"]) == (
        3_500_00,
        1_200_00,
        "settled",
    )
    # the same from plain functions, for an in-process simulator
    with cb_state(net).factory() as s:
        assert clearing_stats.cycle_stats(s)[0]["net_settled"] == 2_300_00
        assert clearing_stats.liquidity_stats(s)["BKA1"]["net_paid"] == 2_300_00
        assert clearing_stats.net_paid_by_operator(s) == {"BKA1": 2_300_00, "BKB1": 0}

    reports = conserved(net)
    for code in CODES:
        assert reports[code]["in_transit_total"] == 0
        assert reports[code]["net_in_flight"] == 0
    with net.state("BKA1").factory() as s:
        row = s.execute(text("SELECT role, net, gross_out, gross_in, status FROM net_obligations"))
        assert [tuple(r) for r in row] == [("debtor", 2_300_00, 3_500_00, 1_200_00, "delivered")]


def test_an_even_pair_is_settled_without_tokens(net: Any) -> None:
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1", deposit=5_000_00, load=5_000_00)
    alice.pay(bob.wallet_id, 700_00)
    bob.pay(alice.wallet_id, 300_00)
    bob.pay(alice.wallet_id, 400_00)
    closed = cycle(net)
    assert closed is not None
    (pair,) = closed["pairs"]
    assert (pair["net"], pair["debtor"], pair["status"]) == (0, None, "settled")
    assert alice.balance().balance == 5_000_00 and bob.balance().balance == 5_000_00
    assert "net_settlement" not in operations(net)
    conserved(net)
    drained(net)


def test_a_payee_who_cannot_take_it_gets_it_returned(net: Any) -> None:
    payer = net.open_wallet("BKA1", wallet_class="II", deposit=30_000_00, load=30_000_00)
    full = net.open_wallet("BKB1", deposit=10_000_00, load=9_999_00)  # class IV, cap 10,000
    ok = net.open_wallet("BKB1")
    nobody = make_wallet_id("BKB1", 424_242)
    over = payer.pay(full.wallet_id, 5_000_00)
    fine = payer.pay(ok.wallet_id, 1_000_00)
    lost = payer.pay(nobody, 2_000_00)
    cycle(net)
    drained(net)
    assert payer.payment(fine.payment_id).status == "delivered"
    for receipt, reason in ((over, "payee_balance_cap_exceeded"), (lost, "unknown_wallet")):
        status = payer.payment(receipt.payment_id)
        assert (status.status, status.failure) == ("returned", reason)
    assert payer.balance().balance == 30_000_00 - 1_000_00
    assert payer.balance().spent_today == 1_000_00  # returned money no longer counts
    assert full.balance().balance == 9_999_00 and ok.balance().balance == 1_000_00
    reports = conserved(net)
    assert reports["BKB1"]["returns_pending"] == 0
    # the payee's operator told the clearing house what it sent back
    with net.state("BKB1").factory() as s:
        returned = s.execute(text("SELECT returned FROM net_obligations")).scalar_one()
    assert sorted(returned) == sorted([over.payment_id, lost.payment_id])


def test_a_return_applied_before_the_payer_applied_waits_for_it(net: Any) -> None:
    """BKB1 owes (it is the debtor), applies first and sends a return back by RTGS before BKA1
    has applied the pair: BKA1 answers `settlement_not_ready` and the return is delivered once
    BKA1 has applied."""
    alice = net.open_wallet("BKA1", wallet_class="II", deposit=30_000_00, load=30_000_00)
    full = net.open_wallet("BKB1", deposit=10_000_00, load=9_999_00)
    bob = net.open_wallet("BKB1", wallet_class="II", deposit=30_000_00, load=30_000_00)
    dave = net.open_wallet("BKA1")
    over = alice.pay(full.wallet_id, 1_000_00)
    bob.pay(dave.wallet_id, 4_000_00)
    submit_all(net)
    close(net)
    netting.sync(net.state("BKB1"))  # the debtor pays and applies; the return is queued
    net.run_jobs()  # BKB1 settles the return at the central bank; BKA1 refuses it for now
    assert alice.payment(over.payment_id).status == "pending_settlement"
    with net.state("BKB1").factory() as s:
        error = s.execute(
            text("SELECT last_error FROM outbox WHERE kind = 'deliver' AND status = 'pending'")
        ).scalar_one()
    assert "settlement_not_ready" in error
    netting.sync(net.state("BKA1"))  # BKA1 applies the pair
    drained(net)
    status = alice.payment(over.payment_id)
    assert (status.status, status.failure) == ("returned", "payee_balance_cap_exceeded")
    assert alice.balance().balance == 30_000_00
    assert dave.balance().balance == 4_000_00
    conserved(net)


def test_sync_and_close_are_idempotent(net: Any) -> None:
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1")
    receipt = alice.pay(bob.wallet_id, 1_234_00)
    for _ in range(3):
        submit_all(net)
    with cb_state(net).factory() as s:
        assert clearing_submissions.waiting_items(s) == 1
    first = close(net)
    assert first is not None and close(net) is None
    for _ in range(4):
        settle_all(net)
        assert bob.balance().balance == 1_234_00
    assert alice.payment(receipt.payment_id).status == "delivered"
    assert cycle(net) is None  # nothing left to clear
    assert operations(net)["net_settlement"]["count"] == 1

    # the clearing house answers replays, and refuses the same ids with other contents
    (obligation,) = net.admin.request("GET", "/v1/clearing/obligations")["obligations"]
    oid = obligation["obligation_id"]
    bka = as_operator(net, "BKA1")
    with net.state("BKA1").factory() as s:
        sid = s.execute(text("SELECT submission_id FROM net_items")).scalar_one()
        rows = s.execute(
            text("SELECT order_id, payee_wallet, payer_alias, amount FROM net_items")
        ).all()
    resubmitted: dict[str, Any] = {
        "submission_id": str(sid),
        "payee_operator": "BKB1",
        "gross": 1_234_00,
        "items": [
            {
                "reference": str(r.order_id),
                "payee_wallet": r.payee_wallet,
                "payer_alias": r.payer_alias,
                "amount": r.amount,
            }
            for r in rows
        ],
    }
    again = bka.request("POST", "/v1/clearing/submissions", resubmitted)
    assert again["replayed"] is True
    changed = {**resubmitted, "gross": 1_000_00}
    changed["items"] = [{**resubmitted["items"][0], "amount": 1_000_00}]
    assert problem(lambda: bka.request("POST", "/v1/clearing/submissions", changed)) == (
        409,
        "idempotency_key_reused",
    )
    fresh = {**resubmitted, "submission_id": str(uuid.uuid4())}
    assert problem(lambda: bka.request("POST", "/v1/clearing/submissions", fresh)) == (
        409,
        "duplicate_clearing_item",
    )
    with net.state("BKA1").factory() as s:
        inputs = s.execute(
            text("SELECT receipt -> 'document' -> 'inputs' FROM net_obligations")
        ).scalar_one()
    paid = bka.request(
        "POST",
        f"/v1/clearing/obligations/{oid}/pay",
        {"serials": inputs},
        idempotency_key=f"net:{oid}",
    )
    assert paid["replayed"] is True
    assert problem(
        lambda: bka.request(
            "POST",
            f"/v1/clearing/obligations/{oid}/pay",
            {"serials": inputs},
            idempotency_key=f"other-{oid}",
        )
    ) == (409, "obligation_settled")
    acked = bka.request("POST", f"/v1/clearing/obligations/{oid}/ack", {"returned": []})
    assert acked["replayed"] is True
    assert operations(net)["net_settlement"]["count"] == 1
    conserved(net)
