"""Net settlement while payments keep flowing: workers, timers, mode switches, volume."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text

from operators.settlement import netting
from tests.clocks import operator_clock
from tests.net_settlement.helpers import (
    CODES,
    LossyTransport,
    cb_state,
    close,
    conserved,
    drained,
    operations,
    settle_all,
    stats,
    submit_all,
)


def test_the_background_workers_and_timer_settle_by_themselves(net: Any) -> None:
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1", deposit=5_000_00, load=5_000_00)
    for code in CODES:
        state = net.state(code)
        state.ctx.net_interval_seconds = 0.2
        state.worker = state.new_worker(interval=0.05, clearing_poll_every=0.1)
        state.worker.start()
    stop = threading.Event()

    def timer() -> None:  # what the central bank's lifespan runs every net_interval_seconds
        while not stop.wait(0.2):
            cb_state(net).close_cycle("timer")

    clock = threading.Thread(target=timer)
    clock.start()
    try:
        paid = [alice.pay(bob.wallet_id, 300_00), bob.pay(alice.wallet_id, 100_00)]
        deadline = time.monotonic() + 20
        while alice.payment(paid[0].payment_id).status != "delivered" or (
            bob.payment(paid[1].payment_id).status != "delivered"
        ):
            assert time.monotonic() < deadline, "not settled by the workers"
            time.sleep(0.1)
    finally:
        stop.set()
        clock.join()
        for code in CODES:
            net.state(code).worker.stop()
            net.state(code).worker.join(timeout=5)
            net.state(code).worker = None
    assert (alice.balance().balance, bob.balance().balance) == (4_800_00, 5_200_00)
    assert stats(net)["cycles"][0]["trigger"] == "timer"
    conserved(net)


def test_payments_keep_flowing_while_cycles_close(net: Any) -> None:
    payers = {
        code: [
            net.open_wallet(code, wallet_class="II", deposit=20_000_00, load=20_000_00)
            for _ in range(3)
        ]
        for code in CODES
    }
    payees = {code: [net.open_wallet(code, wallet_class="II") for _ in range(2)] for code in CODES}
    other = {"BKA1": "BKB1", "BKB1": "BKA1"}
    stop = threading.Event()
    closed: list[dict[str, Any]] = []

    def clearing_loop() -> None:
        while not stop.is_set():
            submit_all(net)
            got = close(net)
            if got:
                closed.append(got)
            settle_all(net)

    def pay(k: int) -> tuple[str, int]:
        code = CODES[k % 2]
        payer = payers[code][k % 3]
        payee = payees[other[code]][k % 2]
        amount = 1_00 + (k * 37_00) % 500_00
        return payer.pay(payee.wallet_id, amount).status, amount

    loop = threading.Thread(target=clearing_loop)
    loop.start()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(pay, range(120)))
    finally:
        stop.set()
        loop.join()
    assert all(status == "pending_settlement" for status, _ in results)
    drained(net)
    assert closed  # cycles closed while payments were being made
    sent = {
        code: sum(a for k, (_, a) in enumerate(results) if CODES[k % 2] == code) for code in CODES
    }
    for code in CODES:
        received = sum(w.balance().balance for w in payees[code])
        assert received == sent[other[code]]
    with net.state("BKA1").factory() as s:
        statuses = s.execute(
            text("SELECT status, count(*) FROM orders WHERE kind = 'payment' GROUP BY 1")
        ).all()
    assert dict(statuses) == {"delivered": 60}
    report = stats(net)
    gross = report["operators"]["BKA1"]["gross_out"] + report["operators"]["BKB1"]["gross_out"]
    assert gross == sum(sent.values())
    net_paid = sum(o["net_paid"] for o in report["operators"].values())
    assert net_paid == sum(c["net_settled"] for c in report["cycles"])
    assert net_paid <= gross
    conserved(net)


def test_switching_modes_mid_stream_keeps_everything_conserved(network: Any) -> None:
    alice = network.open_wallet("BKA1", wallet_class="II", deposit=50_000_00, load=50_000_00)
    bob = network.open_wallet("BKB1", wallet_class="II", deposit=50_000_00, load=50_000_00)
    carol = network.open_wallet("BKB1", wallet_class="II")
    dave = network.open_wallet("BKA1", wallet_class="II")
    expected = {"carol": 0, "dave": 0}

    # RTGS, with one settlement whose answer is lost: it stays queued under RTGS
    assert alice.pay(carol.wallet_id, 100_00).status == "delivered"
    expected["carol"] += 100_00
    client = network.state("BKA1").ctx.central_bank.client
    real_http = client.http
    client.http = httpx.Client(
        base_url="http://testserver",
        transport=LossyTransport(network.cb._transport, "/v1/settlements", lose=1),
    )
    try:
        stuck = alice.pay(carol.wallet_id, 200_00)
    finally:
        client.http = real_http
    expected["carol"] += 200_00
    assert stuck.status == "pending_settlement"

    for code in CODES:  # switch to net
        network.state(code).ctx.settlement_mode = "net"
    net_payments = [alice.pay(carol.wallet_id, 300_00), bob.pay(dave.wallet_id, 1_000_00)]
    expected["carol"] += 300_00
    expected["dave"] += 1_000_00
    # (the central bank did settle the 200; BKA1 applies it when the job is retried)
    reports = {c: network.staff(c).request("GET", "/v1/admin/audit") for c in CODES}
    assert all(r["ok"] for r in reports.values())
    assert reports["BKA1"]["rtgs_in_flight"] == 200_00
    assert reports["BKA1"]["net_in_flight"] == 300_00
    submit_all(network)

    for code in CODES:  # and back to RTGS with net items submitted but not cleared
        network.state(code).ctx.settlement_mode = "rtgs"
    # (RTGS again: inline, unless the vault's only token is the one the stuck job holds)
    late = alice.pay(carol.wallet_id, 400_00)
    assert late.status in ("delivered", "pending_settlement")
    expected["carol"] += 400_00
    assert netting.is_active(network.state("BKA1"))  # queued under net: finishes under net
    close(network)
    operator_clock(network).advance(0.6)  # the lost RTGS settlement is retried after its backoff
    drained(network)
    assert alice.payment(stuck.payment_id).status == "delivered"
    assert alice.payment(late.payment_id).status == "delivered"
    assert alice.payment(net_payments[0].payment_id).status == "delivered"
    assert bob.payment(net_payments[1].payment_id).status == "delivered"
    assert carol.balance().balance == expected["carol"]
    assert dave.balance().balance == expected["dave"]
    ops = operations(network)
    assert ops["settlement"]["count"] == 3  # 100, 200 and 400 by RTGS
    assert ops["net_settlement"] == {"count": 1, "amount": 700_00}
    assert not netting.is_active(network.state("BKA1"))
    conserved(network)


def test_the_batch_path_queues_thousands_of_net_items_at_once(net: Any) -> None:
    from operators.payments import batch

    state = net.state("BKA1")
    state.ctx.net_max_items = 1000
    payers = [
        net.open_wallet("BKA1", wallet_class="II", deposit=100_000_00, load=100_000_00)
        for _ in range(2)
    ]
    payee = net.open_wallet("BKB1", wallet_class="II")
    instructions = [
        batch.Instruction(
            payer=payers[k % 2].wallet_id,
            payee=payee.wallet_id,
            amount=10_00,
            nonce=f"bulk-{k}",
        )
        for k in range(2400)
    ]
    outcomes = state.runner.tx(lambda s: batch.pay_many(s, state.ctx, instructions))
    assert all(o.ok for o in outcomes)
    with state.factory() as s:
        assert s.execute(text("SELECT count(*) FROM net_items")).scalar_one() == 2400
    # 2400 waiting >= net_max_items: due without force, in one submission
    assert netting.sync(state, poll=False)["submissions"] == 1
    # the central bank closed a cycle as soon as net_max_items were waiting
    assert cb_state(net).config.net_max_items == 1000
    assert close(net) is None
    (closed,) = stats(net)["cycles"]
    assert (closed["trigger"], closed["items"], closed["net"]) == ("max_items", 2400, 24_000_00)
    settle_all(net)
    drained(net)
    assert payee.balance().balance == 24_000_00
    conserved(net)


def test_open_items_are_submitted_once_the_oldest_is_old_enough(net: Any) -> None:
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1")
    alice.pay(bob.wallet_id, 100_00)
    state = net.state("BKA1")
    now = state.ctx.now()
    assert netting.sync(state, now=now, poll=False)["submissions"] == 0  # too fresh
    later = now + timedelta(seconds=state.ctx.net_interval_seconds + 1)
    assert netting.sync(state, now=later, poll=False)["submissions"] == 1
    drained(net)
    assert bob.balance().balance == 100_00


def test_the_engines_cycle_runs_only_when_money_is_in_flight(net: Any) -> None:
    """`simulator.settle.net_work` (decision 56): nothing in flight, no cycle; an open item, a
    closed but unpaid pair, a pair applied by one side only: a cycle has work. The engine's
    phases (debtors pay and apply, then creditors apply) settle the pair in one cycle."""
    from simulator.settle import net_cycle, net_work

    class Net:  # what simulator.settle reads of a SimNetwork
        codes = list(CODES)
        cb_state = cb_state(net)

        @staticmethod
        def up(code: str) -> bool:
            return True

        @staticmethod
        def state(code: str) -> Any:
            return net.state(code)

        class clock:  # noqa: N801 (the SimClock's one method used here)
            @staticmethod
            def now() -> Any:
                return net.state("BKA1").ctx.now()

    sim: Any = Net  # stands in for a SimNetwork
    alice = net.open_wallet("BKA1", wallet_class="II", deposit=50_000_00, load=50_000_00)
    carol = net.open_wallet("BKB1")
    assert not net_work(sim)
    receipt = alice.pay(carol.wallet_id, 1_500_00)
    assert net_work(sim)  # an open item
    submit_all(net)
    assert close(net) is not None
    assert net_work(sim)  # a pair to pay
    netting.sync(net.state("BKA1"), force=True, roles=("debtor",))
    assert carol.balance().balance == 0
    assert net_work(sim)  # paid and applied by the debtor, not by the creditor
    netting.sync(net.state("BKB1"), force=True, roles=("creditor", "even"))
    netting.sync(net.state("BKA1"), force=True, roles=("debtor",))  # sees the acknowledgement
    assert carol.balance().balance == 1_500_00
    assert alice.payment(receipt.payment_id).status == "delivered"
    assert not net_work(sim)  # nothing in flight anywhere: the engine skips the cycle

    again = alice.pay(carol.wallet_id, 500_00)
    net_cycle(sim)  # the engine's own cycle, phase by phase
    assert carol.balance().balance == 2_000_00
    assert alice.payment(again.payment_id).status == "delivered"
    assert not net_work(sim)
    conserved(net)
