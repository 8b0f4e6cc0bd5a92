"""Deferred net settlement: cross-operator payments netted per operator pair and settled
through the central bank's clearing house in cycles. Only the net moves tokens; payees are
credited when the pair is applied; payees who cannot take the money get it returned by RTGS;
every step is idempotent; payments keep flowing while cycles close; the mode can switch
mid-stream. Every scenario checks the cross-tier conservation of money after each cycle."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from cbdc.addresses import make_wallet_id
from cbdc.http import RemoteError, SignedClient
from central_bank import clearing
from central_bank.state import CentralBankState
from operators import netting

CODES = ("BKA1", "BKB1")


# ------------------------------------------------------------------ helpers


@pytest.fixture
def net(network: Any) -> Any:
    """The in-process network with both operators in mode "net" (switched at run time, as a
    simulator does)."""
    for code in CODES:
        network.state(code).ctx.settlement_mode = "net"
    return network


def cb_state(network: Any) -> CentralBankState:
    return network.cb_app.state.cb  # type: ignore[no-any-return]


def submit_all(network: Any) -> None:
    for code in CODES:
        netting.sync(network.state(code), force=True, poll=False)


def close(network: Any) -> dict[str, Any] | None:
    return cb_state(network).close_cycle("manual")


def settle_all(network: Any) -> None:
    """Every operator does what the clearing house asks (debtors pay, everyone applies and
    acknowledges), then marks delivered what its peers applied; returns travel by RTGS."""
    for _ in range(3):
        for code in CODES:
            netting.sync(network.state(code))
        network.run_jobs()


def cycle(network: Any) -> dict[str, Any] | None:
    """One whole clearing cycle, deterministically: submit, close, pay, apply, deliver."""
    submit_all(network)
    closed = close(network)
    settle_all(network)
    return closed


def conserved(network: Any) -> dict[str, dict[str, Any]]:
    """The cross-tier audit (what `cbdc audit` checks), without draining anything."""
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["ok"], [c for c in central["checks"] if not c["ok"]]
    assert central["live_token_value"] == central["issued"] - central["redeemed"]
    reports = {}
    for code in CODES:
        report = network.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], [c for c in report["checks"] if not c["ok"]]
        registered = central["operators"][code]["live_token_value"]
        assert registered == report["vault_token_value"], code
        held = report["vault_float"] + report["wallets"] + report["in_transit_total"]
        assert registered == held, code
        reports[code] = report
    assert sum(r["vault_token_value"] for r in reports.values()) == central["live_token_value"]
    return reports


def stats(network: Any) -> dict[str, Any]:
    return network.admin.request("GET", "/v1/stats/clearing")  # type: ignore[no-any-return]


def drained(network: Any, timeout: float = 20) -> None:
    """Cycles and outbox runs until no payment waits for settlement anywhere."""
    deadline = time.monotonic() + timeout
    while True:
        cycle(network)
        left = 0
        for code in CODES:
            answer = network.staff(code).request("POST", "/v1/admin/jobs/run")
            net = answer["net"]
            left += answer["outbox"].get("pending", 0) + net["items_open"]
            left += net["items_submitted"] + net["obligations_unapplied"]
            left += net["obligations_undelivered"]
        if not left:
            return
        assert time.monotonic() < deadline, "net settlement did not drain"
        time.sleep(0.1)


def operations(network: Any) -> dict[str, Any]:
    return network.admin.request("GET", "/v1/stats/money-supply")["operations"]  # type: ignore


def as_operator(network: Any, code: str) -> SignedClient:
    """A client of the central bank signing as operator `code`."""
    return SignedClient(
        network.cb,
        key=network.operator_keys[code],
        key_id=f"operator:{code}",
        server_public_key=network.cb_key.public_key,
    )


def problem(call: Any) -> tuple[int, str]:
    with pytest.raises(RemoteError) as caught:
        call()
    return caught.value.status, caught.value.code


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
        assert clearing.cycle_stats(s)[0]["net_settled"] == 2_300_00
        assert clearing.liquidity_stats(s)["BKA1"]["net_paid"] == 2_300_00
        assert clearing.net_paid_by_operator(s) == {"BKA1": 2_300_00, "BKB1": 0}

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
        assert clearing.waiting_items(s) == 1
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
    resubmitted = {
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


class LossyTransport(httpx.BaseTransport):
    """Forwards to the real service, but loses the answer of the first `lose` requests whose
    path starts with `prefix` (and ends with `suffix`): the request was processed, the caller
    sees a timeout."""

    def __init__(
        self, inner: httpx.BaseTransport, prefix: str, *, lose: int, suffix: str = ""
    ) -> None:
        self.inner, self.prefix, self.suffix, self.lose, self.lost = inner, prefix, suffix, lose, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.startswith(self.prefix) and path.endswith(self.suffix) and self.lost < self.lose:
            self.lost += 1
            self.inner.handle_request(request).read()
            raise httpx.ReadTimeout("answer lost", request=request)
        return self.inner.handle_request(request)


@pytest.mark.parametrize("path", ["/v1/clearing/submissions", "/v1/clearing/obligations/"])
def test_lost_answers_delay_but_never_duplicate(net: Any, path: str) -> None:
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1")
    client = net.state("BKA1").ctx.central_bank.client
    real_http = client.http
    lossy = LossyTransport(net.cb._transport, path, lose=2)
    client.http = httpx.Client(base_url="http://testserver", transport=lossy)
    try:
        alice.pay(bob.wallet_id, 900_00)
        for _ in range(3):
            cycle(net)
            time.sleep(0.6)  # retries after backoff
    finally:
        client.http = real_http
    drained(net)
    assert lossy.lost == 2
    assert bob.balance().balance == 900_00
    assert alice.balance().balance == 4_100_00
    assert operations(net)["net_settlement"] == {"count": 1, "amount": 900_00}
    conserved(net)


def test_a_pair_applied_before_the_lost_payment_is_retried(net: Any) -> None:
    """The debtor's payment went through but its answer was lost; the pair is applied from the
    clearing house's record before the payment job is retried: the job then has nothing left
    to do, and no vault token stays reserved."""
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1")
    client = net.state("BKA1").ctx.central_bank.client
    real_http = client.http
    lossy = LossyTransport(net.cb._transport, "/v1/clearing/", suffix="/pay", lose=1)
    client.http = httpx.Client(base_url="http://testserver", transport=lossy)
    try:
        alice.pay(bob.wallet_id, 800_00)
        submit_all(net)
        close(net)
        netting.sync(net.state("BKA1"))  # pays; the answer is lost; retried after a backoff
        assert lossy.lost == 1
        netting.sync(net.state("BKA1"))  # sees the pair settled and applies it
    finally:
        client.http = real_http
    with net.state("BKA1").factory() as s:
        jobs = dict(
            s.execute(text("SELECT kind, status FROM outbox WHERE kind LIKE 'net_%'")).all()
        )
        reserved = s.execute(
            text("SELECT count(*) FROM vault_tokens WHERE status = 'reserved'")
        ).scalar_one()
    assert jobs == {"net_submit": "done", "net_pay": "done", "net_apply": "done"}
    assert reserved == 0
    time.sleep(0.6)
    drained(net)
    assert bob.balance().balance == 800_00
    assert operations(net)["net_settlement"]["count"] == 1
    conserved(net)


def test_the_background_workers_and_timer_settle_by_themselves(net: Any) -> None:
    from operators.jobs import OutboxWorker

    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1", deposit=5_000_00, load=5_000_00)
    for code in CODES:
        state = net.state(code)
        state.ctx.net_interval_seconds = 0.2
        state.worker = OutboxWorker(state.runner, interval=0.05, clearing_poll_every=0.1)
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


def test_a_refused_submission_refunds_the_payers(net: Any) -> None:
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1")
    engine = cb_state(net).engine
    with engine.begin() as conn:
        conn.execute(text("UPDATE operators SET status = 'suspended' WHERE code = 'BKB1'"))
    receipt = alice.pay(bob.wallet_id, 1_000_00)
    submit_all(net)
    status = alice.payment(receipt.payment_id)
    assert (status.status, status.failure) == ("failed", "operator_suspended")
    info = alice.balance()
    assert (info.balance, info.spent_today) == (5_000_00, 0)
    with engine.begin() as conn:
        conn.execute(text("UPDATE operators SET status = 'active' WHERE code = 'BKB1'"))
    alice.pay(bob.wallet_id, 1_000_00)
    drained(net)
    assert bob.balance().balance == 1_000_00
    conserved(net)


def test_a_liquidity_shortfall_is_covered_by_issuance_and_recorded(net: Any) -> None:
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1")
    alice.pay(bob.wallet_id, 2_000_00)
    submit_all(net)
    close(net)
    with net.state("BKA1").engine.begin() as conn:  # every token is held by something else
        conn.execute(
            text(
                "UPDATE vault_tokens SET status = 'reserved', reserved_for = 'test-hold' "
                "WHERE status = 'held'"
            )
        )
    issued = net.admin.request("GET", "/v1/admin/audit")["issued"]
    settle_all(net)
    assert bob.balance().balance == 2_000_00
    assert net.admin.request("GET", "/v1/admin/audit")["issued"] == issued + 2_000_00
    with net.state("BKA1").factory() as s:
        assert s.execute(text("SELECT shortfall FROM net_obligations")).scalar_one() == 2_000_00
    with net.state("BKA1").engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE vault_tokens SET status = 'held', reserved_for = NULL "
                "WHERE reserved_for = 'test-hold'"
            )
        )
    drained(net)
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
    time.sleep(0.6)  # the lost RTGS settlement is retried after its backoff
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
    from operators import batch

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


# ------------------------------------------------------------------ authorisation and input


def test_clearing_endpoints_are_authorised_and_refuse_bad_input(net: Any) -> None:
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1")
    alice.pay(bob.wallet_id, 500_00)
    submit_all(net)
    close(net)
    (obligation,) = net.admin.request("GET", "/v1/clearing/obligations")["obligations"]
    oid = obligation["obligation_id"]
    bka, bkb = as_operator(net, "BKA1"), as_operator(net, "BKB1")

    # operators see their own obligations only; a third operator sees nothing
    from cbdc.crypto import SigningKey

    third = SigningKey.generate()
    net.admin.request(
        "POST",
        "/v1/admin/operators",
        {"code": "BKC1", "name": "Bank C", "public_key": third.public_key, "quota": 10**9},
    )
    bkc = SignedClient(net.cb, key=third, key_id="operator:BKC1")
    assert bkc.request("GET", "/v1/clearing/obligations")["obligations"] == []
    assert problem(lambda: bkc.request("GET", f"/v1/clearing/obligations/{oid}")) == (
        404,
        "unknown_obligation",
    )
    assert [o["role"] for o in bka.request("GET", "/v1/clearing/obligations")["obligations"]] == [
        "debtor"
    ]
    # only the debtor pays; only admin closes; stats for admin and regulator
    assert problem(
        lambda: bkb.request(
            "POST",
            f"/v1/clearing/obligations/{oid}/pay",
            {"serials": [str(uuid.uuid4())]},
            idempotency_key=f"net:{oid}",
        )
    ) == (403, "not_debtor")
    assert problem(lambda: bka.request("POST", "/v1/admin/clearing/close")) == (403, "forbidden")
    assert problem(lambda: bka.request("GET", "/v1/stats/clearing")) == (403, "forbidden")
    # acknowledging before it is settled
    assert problem(
        lambda: bkb.request("POST", f"/v1/clearing/obligations/{oid}/ack", {"returned": []})
    ) == (409, "obligation_not_settled")
    # bad input: problem+json with a stable code, never a 500
    assert problem(lambda: bka.request("GET", "/v1/clearing/obligations/not-a-uuid")) == (
        422,
        "validation_error",
    )
    assert problem(lambda: bka.request("GET", "/v1/clearing/obligations", params={"limit": 0})) == (
        422,
        "validation_error",
    )
    good_item = {
        "reference": str(uuid.uuid4()),
        "payee_wallet": bob.wallet_id,
        "payer_alias": "anon-x",
        "amount": 100,
    }

    def submission(**kw: Any) -> dict[str, Any]:
        body = {
            "submission_id": str(uuid.uuid4()),
            "payee_operator": "BKB1",
            "gross": 100,
            "items": [good_item],
        }
        return {**body, **kw}

    def refused(body: dict[str, Any]) -> tuple[int, str]:
        return problem(lambda: bka.request("POST", "/v1/clearing/submissions", body))

    assert refused(submission(gross=101)) == (422, "validation_error")
    assert refused(submission(submission_id="nope")) == (422, "validation_error")
    assert refused(submission(submission_id=str(uuid.uuid4()).upper())) == (
        422,
        "validation_error",
    )
    assert refused(submission(payee_operator="BKA1")) == (422, "validation_error")
    assert refused(submission(payee_operator="ZZZ9")) == (404, "unknown_operator")
    assert refused(submission(items=[{**good_item, "payee_wallet": alice.wallet_id}])) == (
        422,
        "validation_error",
    )
    assert refused(submission(items=[good_item, good_item], gross=200)) == (
        422,
        "validation_error",
    )
    assert refused(submission(items=[{**good_item, "amount": "100"}])) == (
        422,
        "validation_error",
    )
    assert refused(submission(items=[{**good_item, "payer_alias": "a\u0000b"}])) == (
        422,
        "invalid_data",
    )
    assert refused(submission(items=[])) == (422, "validation_error")
    assert problem(
        lambda: bka.request(
            "POST",
            f"/v1/clearing/obligations/{oid}/pay",
            {"serials": ["x"]},
            idempotency_key=f"net:{oid}",
        )
    ) == (422, "validation_error")
    # the regulator may read the statistics
    regulator = SignedClient(net.cb, key=net.regulator.signing, key_id="regulator")
    assert regulator.request("GET", "/v1/stats/clearing")["position"]["obligations_pending"] == 1
    settle_all(net)
    assert bob.balance().balance == 500_00
    conserved(net)


def test_admin_closes_a_cycle_over_http(net: Any) -> None:
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1")
    alice.pay(bob.wallet_id, 250_00)
    assert net.admin.request("POST", "/v1/admin/clearing/close")["cycle"] is None
    submit_all(net)
    answer = net.admin.request("POST", "/v1/admin/clearing/close")["cycle"]
    assert answer["trigger"] == "admin" and answer["net"] == 250_00
    settle_all(net)
    assert bob.balance().balance == 250_00
    conserved(net)


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

    alice = net.open_wallet("BKA1", wallet_class="II", deposit=50_000_00, load=50_000_00)
    carol = net.open_wallet("BKB1")
    assert not net_work(Net)
    receipt = alice.pay(carol.wallet_id, 1_500_00)
    assert net_work(Net)  # an open item
    submit_all(net)
    assert close(net) is not None
    assert net_work(Net)  # a pair to pay
    netting.sync(net.state("BKA1"), force=True, roles=("debtor",))
    assert carol.balance().balance == 0
    assert net_work(Net)  # paid and applied by the debtor, not by the creditor
    netting.sync(net.state("BKB1"), force=True, roles=("creditor", "even"))
    netting.sync(net.state("BKA1"), force=True, roles=("debtor",))  # sees the acknowledgement
    assert carol.balance().balance == 1_500_00
    assert alice.payment(receipt.payment_id).status == "delivered"
    assert not net_work(Net)  # nothing in flight anywhere: the engine skips the cycle

    again = alice.pay(carol.wallet_id, 500_00)
    net_cycle(Net)  # the engine's own cycle, phase by phase
    assert carol.balance().balance == 2_000_00
    assert alice.payment(again.payment_id).status == "delivered"
    assert not net_work(Net)
    conserved(net)
