"""The raw SQL of the batch payment path (`operators.payments.payment_sql`): its one write statement
is still held to the ledger's invariants by the database, replays are found within and across
batches, the wallets are read as of the lock, and the engine pool pings only idle
connections."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from cbdc import db
from cbdc.db import transaction
from cbdc.errors import InsufficientFunds
from cbdc.policy import WalletClass
from operators.payments import batch, payment_sql, signed_batch
from operators.wallets import service, states
from tests.test_compliance_aml import aml, cb_alerts, op_alerts, rules_of
from wallets.orders import payment_order, sign_order


def _signed(wallet: Any, payee: str, amount: int, **kw: Any) -> tuple[dict[str, Any], str]:
    signed = sign_order(
        wallet.key,
        payment_order(payer=wallet.wallet_id, payee=payee, amount=amount, currency="CNY", **kw),
    )
    return signed["order"], signed["signature"]


def _judge(state: Any, items: list[tuple[dict[str, Any], str]]) -> list[Any]:
    return state.uow.run(  # type: ignore[no-any-return]
        None, lambda s: signed_batch.judge_signed(s, state.ctx, items=items)
    )


def _write(state: Any, legs: list[tuple[int, int]], payer: str, payee: str) -> Any:
    """One payment written straight through `write_batch`, with the legs given."""
    order = payment_sql.NewOrder(
        uuid.uuid4(), payer, f"raw-{uuid.uuid4()}", 1_00, payee, "completed", 1,
        "2026-12-04T12:00:00+00:00", None, None, None,
    )  # fmt: skip

    def work(session: Any) -> Any:
        return payment_sql.write_batch(
            session,
            entries=[("payment", str(order.id), legs)],
            orders=[order],
            counters=[],
            at=state.ctx.now(),
        )

    return transaction(state.factory, work)


def _orders(state: Any, wallet_id: str) -> int:
    with state.factory() as session:
        return int(
            session.execute(
                text("SELECT count(*) FROM orders WHERE wallet_id = :w"), {"w": wallet_id}
            ).scalar_one()
        )


def _account(state: Any, wallet_id: str) -> int:
    with state.factory() as session:
        return int(
            session.execute(
                text("SELECT account_id FROM wallets WHERE id = :w"), {"w": wallet_id}
            ).scalar_one()
        )


def test_the_write_statement_is_refused_by_the_database_when_unbalanced(network: Any) -> None:
    state = network.state("BKA1")
    a = network.open_wallet("BKA1", load=10_00)
    b = network.open_wallet("BKA1")
    acc_a, acc_b = _account(state, a.wallet_id), _account(state, b.wallet_id)
    with pytest.raises(DBAPIError) as refused:
        _write(state, [(acc_a, -1_00), (acc_b, 2_00)], a.wallet_id, b.wallet_id)
    assert "does not balance" in str(refused.value)
    assert (a.balance().balance, b.balance().balance) == (10_00, 0)
    assert _orders(state, a.wallet_id) == 1  # the load only: nothing of the statement stayed


def test_the_write_statement_cannot_make_a_balance_negative(network: Any) -> None:
    state = network.state("BKA1")
    a = network.open_wallet("BKA1", load=10_00)
    b = network.open_wallet("BKA1")
    acc_a, acc_b = _account(state, a.wallet_id), _account(state, b.wallet_id)
    with pytest.raises(InsufficientFunds):
        _write(state, [(acc_a, -11_00), (acc_b, 11_00)], a.wallet_id, b.wallet_id)
    assert (a.balance().balance, b.balance().balance) == (10_00, 0)
    _write(state, [(acc_a, -10_00), (acc_b, 10_00)], a.wallet_id, b.wallet_id)  # this one fits
    assert (a.balance().balance, b.balance().balance) == (0, 10_00)


def test_replays_within_and_across_batches(network: Any) -> None:
    state = network.state("BKA1")
    a = network.open_wallet("BKA1", load=100_00)
    b = network.open_wallet("BKA1")
    first = _signed(a, b.wallet_id, 10_00)
    other = _signed(a, b.wallet_id, 20_00, nonce=first[0]["nonce"])  # same nonce, other order
    one = _judge(state, [first, first, other])
    assert not one[0]["replayed"] and one[1]["replayed"]
    assert one[1]["payment_id"] == one[0]["payment_id"]
    assert one[2].code == "idempotency_key_reused"
    assert _judge(state, [other])[0].code == "idempotency_key_reused"  # a later batch
    two = _judge(state, [_signed(a, b.wallet_id, 1_00), first])
    assert not two[0]["replayed"]
    assert two[1]["replayed"] and two[1]["payment_id"] == one[0]["payment_id"]
    assert two[1]["status"] == "completed"
    assert (a.balance().balance, b.balance().balance) == (89_00, 11_00)
    assert _orders(state, a.wallet_id) == 3  # the load and two payments


def test_a_refused_order_stays_refused_when_sent_again(network: Any) -> None:
    state = network.state("BKA1")
    a = network.open_wallet("BKA1", load=5_00)
    b = network.open_wallet("BKA1")
    too_much = _signed(a, b.wallet_id, 6_00)
    assert _judge(state, [too_much])[0].code == "insufficient_funds"
    again = _judge(state, [too_much])
    assert again[0].code == "order_already_refused"


def test_a_payee_downgraded_while_the_batch_waits_for_its_lock_is_judged_as_downgraded(
    network: Any,
) -> None:
    """The wallets are read by a statement after the lock (a snapshot taken after it), not
    with it: a class change committed while the payment waits for the payee's account lock
    is what the payment sees."""
    state = network.state("BKA1")
    payer = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    payee = network.open_wallet("BKA1", wallet_class="II", deposit=10_000_00, load=10_000_00)
    account = _account(state, payee.wallet_id)
    item = _signed(payer, payee.wallet_id, 50_00)
    results: list[Any] = []
    holding = threading.Event()

    def downgrade_under_lock(session: Any) -> None:
        session.execute(
            text("SELECT 1 FROM accounts WHERE id = :a FOR UPDATE"), {"a": account}
        ).all()
        holding.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the payment waits for this lock
            with state.factory() as probe:
                waiting = probe.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                ).scalar_one()
            if waiting:
                break
            time.sleep(0.02)
        service.change_class(
            session,
            state.ctx,
            wallet_id=payee.wallet_id,
            wallet_class=WalletClass.IV,
            customer=None,
            by_staff=True,
        )

    staff = threading.Thread(target=transaction, args=(state.factory, downgrade_under_lock))
    staff.start()
    assert holding.wait(10)
    results.append(_judge(state, [item])[0])
    staff.join(10)
    assert results[0].code == "payee_balance_cap_exceeded", results
    info = payee.balance()
    assert info.wallet_class == "IV" and info.balance <= info.limits.balance_cap


def test_read_batch_reads_balances_states_and_stored_orders_in_one_go(network: Any) -> None:
    state = network.state("BKA1")
    a = network.open_wallet("BKA1", load=7_00)
    b = network.open_wallet("BKA1")
    paid = _judge(state, [_signed(a, b.wallet_id, 2_00, nonce="n-read")])[0]

    def work(session: Any) -> payment_sql.BatchRead:
        return payment_sql.read_batch(
            session,
            [a.wallet_id, b.wallet_id, "BKA1NOSUCHWALLET0000"],
            with_keys=True,
            nonces=[(a.wallet_id, "n-read"), (a.wallet_id, "n-other")],
        )

    read = transaction(state.factory, work)
    assert set(read.wallets) == {a.wallet_id, b.wallet_id}
    assert read.wallets[a.wallet_id].public_key == a.key.public_key
    assert read.balances[read.wallets[a.wallet_id].account_id] == 5_00
    assert list(read.previous) == [(a.wallet_id, "n-read")]
    assert str(read.previous[(a.wallet_id, "n-read")].id) == paid["payment_id"]


def test_the_pool_pings_only_connections_that_sat_idle(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy pool costs no round trip per checkout; a connection idle for longer than
    PING_AFTER_IDLE_SECONDS is pinged, and a dead one is replaced before it is used."""
    state = network.state("BKA1")
    url = state.engine.url.render_as_string(hide_password=False)
    engine = db.make_engine(url, pool_size=1, max_overflow=0)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 5.0)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with state.factory() as admin:  # the server ends that connection while it is idle
            admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with pytest.raises(DBAPIError) as lost, engine.connect() as conn:  # used at once: no ping
            conn.execute(text("SELECT 1"))
        assert lost.value.connection_invalidated
        with engine.connect() as conn:  # a fresh connection (the pool was invalidated)
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with state.factory() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.05)
        time.sleep(0.2)
        with engine.connect() as conn:  # idle: pinged, found dead, replaced, no error
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()


def test_one_wallet_state_type_for_every_set_based_path() -> None:
    assert batch.WalletState is payment_sql.WalletState is states.WalletState


@pytest.mark.parametrize("network", [aml(large_value=1_000_00)], indirect=True)
def test_several_alerts_of_one_batch_are_stored_and_reported_together(network: Any) -> None:
    state = network.state("BKA1")
    a = network.open_wallet("BKA1", load=3_000_00)
    b = network.open_wallet("BKA1", load=3_000_00)
    c = network.open_wallet("BKA1")
    results = _judge(state, [_signed(a, c.wallet_id, 1_000_00), _signed(b, c.wallet_id, 1_500_00)])
    assert all(isinstance(r, dict) for r in results), results
    alerts = op_alerts(network)
    assert sorted(rules_of(alerts)) == sorted(
        [("large_value", a.wallet_id), ("large_value", b.wallet_id)]
    )
    assert sorted(x["amount"] for x in alerts) == [1_000_00, 1_500_00]
    network.run_jobs()
    central = cb_alerts(network, rule="large_value")
    assert {x["report_id"] for x in central} == {str(x["id"]) for x in alerts}
    assert {x["wallet"] for x in central} == {a.wallet_id, b.wallet_id}
