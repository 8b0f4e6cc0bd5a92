"""Batched gross settlement between operators (operators/settlement/rtgs.py, rtgs_settler.py,
rtgs_inbound.py): concurrent cross-operator payments move in batches, yet each settles exactly
once with its own central bank receipt; a refusal of one item refunds only that payment; a
batch delivered twice credits once; forged items are rejected while the others are credited."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import text

from cbdc.http import RemoteError
from tests.test_cross_operator import audit_all


def _cb_count(network: Any, sql: str, **params: Any) -> Any:
    with network.cb_app.state.cb.factory() as s:
        return s.execute(text(sql), params).scalar_one()


def _op_rows(network: Any, code: str, sql: str, **params: Any) -> list[Any]:
    with network.state(code).factory() as s:
        return list(s.execute(text(sql), params).all())


def test_concurrent_cross_payments_settle_in_batches_each_exactly_once(network: Any) -> None:
    payers = [network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00) for _ in range(6)]
    payees = [network.open_wallet("BKB1") for _ in range(3)]
    plan = [(payers[i % 6], payees[i % 3].wallet_id, 1_00 + i) for i in range(48)]

    def pay(item: tuple[Any, str, int]) -> Any:
        payer, payee, amount = item
        return payer.pay(payee, amount)

    with ThreadPoolExecutor(max_workers=12) as pool:
        receipts = list(pool.map(pay, plan))
    # Under normal operation the answer is final: delivered (settled if the delivery lagged).
    assert {r.status for r in receipts} <= {"delivered", "settled"}, [r.status for r in receipts]
    audit_all(network)
    for r in receipts:
        assert (
            _cb_count(
                network,
                "SELECT count(*) FROM operations WHERE kind = 'settlement' AND reference = :r",
                r=f"pay:{r.payment_id}",
            )
            == 1
        )
    # Each payment its own settlement id, receipt and token at the payee's operator.
    inbound = _op_rows(
        network, "BKB1", "SELECT settlement_id, reference, amount, receipt FROM inbound_settlements"
    )
    assert len(inbound) == len(receipts)
    assert len({row.settlement_id for row in inbound}) == len(receipts)
    assert {row.reference for row in inbound} == {r.payment_id for r in receipts}
    assert all(row.receipt["document"]["batch"].startswith("rtgs:") for row in inbound)
    # Fewer central bank calls than payments (batches), and no per-payment outbox job.
    batches = _cb_count(network, "SELECT count(*) FROM operations WHERE kind = 'settlement_batch'")
    assert 1 <= batches <= len(receipts)
    kinds = dict(_op_rows(network, "BKA1", "SELECT kind, count(*) FROM outbox GROUP BY kind"))
    assert "settle" not in kinds and kinds.get("rtgs_batch", 0) <= len(receipts)
    for payer in payers:
        paid = sum(amount for p, _, amount in plan if p is payer)
        assert payer.balance().balance == 1_000_00 - paid
    for payee in payees:
        got = sum(amount for _, w, amount in plan if w == payee.wallet_id)
        assert payee.balance().balance == got


def test_a_refused_item_refunds_only_its_payment(network: Any, monkeypatch: Any) -> None:
    """The central bank refuses one item of a batch (here: it names an unknown operator,
    as if that payee's operator were struck off): that payment is refunded, the others of the
    same batch settle and are delivered."""
    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    state = network.state("BKA1")
    central_bank = state.ctx.central_bank
    real = central_bank.settle_batch
    state.ctx.settlement_mode = "deferred_net"  # queue only: the test gathers one batch
    receipts = [payer.pay(payee.wallet_id, 100_00 * (i + 1)) for i in range(3)]
    state.ctx.settlement_mode = "rtgs"
    victim = f"pay:{receipts[1].payment_id}"

    def settle_batch(*, reference: str, serials: list[str], items: list[dict[str, Any]]) -> Any:
        altered = [
            {**i, "payee_operator": "ZZZ9"} if i["reference"] == victim else i for i in items
        ]
        return real(reference=reference, serials=serials, items=altered)

    monkeypatch.setattr(central_bank, "settle_batch", settle_batch)
    assert state.runner.rtgs.settle_ready(own=True) == 1  # one batch of three
    monkeypatch.setattr(central_bank, "settle_batch", real)
    final = [payer.payment(r.payment_id) for r in receipts]
    assert [f.status for f in final] == ["delivered", "failed", "delivered"]
    assert final[1].failure == "unknown_operator"
    assert payer.balance().balance == 5_000_00 - 100_00 - 300_00
    assert payer.balance().spent_today == 400_00  # the refund no longer counts
    assert payee.balance().balance == 400_00
    audit_all(network)


def test_a_batch_delivered_twice_credits_once_and_forged_items_are_rejected(
    network: Any,
) -> None:
    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    receipts = [payer.pay(payee.wallet_id, 10_00 + i) for i in range(3)]
    assert {r.status for r in receipts} == {"delivered"}
    bodies = [
        item["body"]
        for (payload,) in _op_rows(
            network, "BKA1", "SELECT payload FROM outbox WHERE kind = 'rtgs_deliver'"
        )
        for item in payload["items"]
    ]
    assert len(bodies) == 3
    peer = network.state("BKA1").ctx.peers.client("BKB1")
    assert peer is not None
    forged = copy.deepcopy(bodies[0])
    forged["receipt"]["document"]["amount"] += 1  # no longer what the central bank signed
    answer = peer.request(
        "POST", "/v1/interop/settlements/batch", {"items": [*bodies, forged, bodies[0]]}
    )
    outcomes = [(a["outcome"], a.get("replayed")) for a in answer["items"]]
    assert outcomes[:3] == [("credited", True)] * 3  # seen before: recorded outcome
    assert outcomes[3][0] == "rejected" and answer["items"][3]["code"] == "settlement_rejected"
    assert outcomes[4] == ("credited", True)
    assert payee.balance().balance == sum(r.amount for r in receipts)
    # A batch from an operator that did not settle it is rejected item by item.
    staff_b = network.state("BKB1").ctx.peers.client("BKA1")
    assert staff_b is not None
    try:
        answer = staff_b.request("POST", "/v1/interop/settlements/batch", {"items": bodies})
    except RemoteError:  # BKA1 is not the payee of these receipts: refused as a whole is fine
        pass
    else:
        assert {a["outcome"] for a in answer["items"]} == {"rejected"}
    audit_all(network)
