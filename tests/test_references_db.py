"""References checked by statement triggers instead of foreign keys (migration op0007,
decision 52): orders → wallets and journal entries, net items → orders, inbound settlements →
journal entries. Raw SQL on a freshly migrated operator database: each refusal is a
foreign_key_violation and writes nothing; the rows referred to cannot be deleted, renumbered
or truncated away, and the references cannot be rewritten.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from tests.databases import new_database

FOREIGN_KEY_VIOLATION = "23503"

SEED = """
INSERT INTO accounts (id, code, kind, balance, allow_negative) VALUES
    (1, 'wallet:1', 'wallet', 0, true), (2, 'deposit:1', 'deposit', 0, true);
INSERT INTO customers (id, identity, deposit_account_id) VALUES (1, '{}'::jsonb, 2);
INSERT INTO wallets (id, customer_id, account_id, wallet_class, public_key, certificate,
                     certificate_signature, status, spent_day_total, spent_year_total)
VALUES ('TEST0000000000000001', 1, 1, 1, 'pk1', '{}'::jsonb, 's', 'active', 0, 0);
INSERT INTO journal_entries (id, kind) VALUES (1, 'test');
INSERT INTO postings (entry_id, account_id, amount) VALUES (1, 1, -5), (1, 2, 5);
"""

WALLET = "TEST0000000000000001"


@pytest.fixture
def db(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(new_database(pg_url, "operator"))
    with engine.begin() as conn:
        for statement in SEED.split(";"):
            if statement.strip():
                conn.execute(text(statement))
    yield engine
    engine.dispose()


def add_order(conn: Connection, *, wallet: str = WALLET, entry: int | None = 1) -> uuid.UUID:
    order_id = uuid.uuid4()
    conn.execute(
        text(
            "INSERT INTO orders (id, wallet_id, nonce, kind, amount, counterparty, status, "
            "entry_id) VALUES (:id, :w, :n, 'payment', 5, 'BKB10000000000000001', "
            "'pending_settlement', :e)"
        ),
        {"id": order_id, "w": wallet, "n": str(order_id), "e": entry},
    )
    return order_id


def add_net_item(conn: Connection, order_id: uuid.UUID) -> None:
    conn.execute(
        text(
            "INSERT INTO net_items (order_id, peer, payee_wallet, payer_alias, amount) "
            "VALUES (:o, 'BKB1', 'BKB10000000000000001', 'alias', 5)"
        ),
        {"o": order_id},
    )


def add_inbound(conn: Connection, entry: int | None) -> None:
    conn.execute(
        text(
            "INSERT INTO inbound_settlements (settlement_id, payer_operator, reference, kind, "
            "payee_wallet, amount, outcome, receipt, entry_id) VALUES (:s, 'BKB1', 'r', "
            "'payment', :w, 5, 'credited', '{}'::jsonb, :e)"
        ),
        {"s": uuid.uuid4(), "w": WALLET, "e": entry},
    )


def counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(
            int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
            for t in ("wallets", "orders", "net_items", "inbound_settlements", "journal_entries")
        )


def refused(engine: Engine, action, message: str) -> None:  # type: ignore[no-untyped-def]
    before = counts(engine)
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        action(conn)
    assert getattr(caught.value.orig, "sqlstate", None) == FOREIGN_KEY_VIOLATION
    assert message in str(caught.value.orig)
    assert counts(engine) == before


def test_known_references_are_accepted(db: Engine) -> None:
    with db.begin() as conn:
        order_id = add_order(conn)
        add_order(conn, entry=None)  # a refused order has no entry
        add_net_item(conn, order_id)
        add_inbound(conn, 1)
        add_inbound(conn, None)
    assert counts(db) == (1, 2, 1, 2, 1)


def test_order_for_unknown_wallet_is_refused(db: Engine) -> None:
    refused(db, lambda c: add_order(c, wallet="NOPE0000000000000001"), "unknown wallet")


def test_order_for_unknown_entry_is_refused(db: Engine) -> None:
    refused(db, lambda c: add_order(c, entry=999), "unknown journal entry 999")


def test_one_bad_order_in_a_statement_refuses_the_statement(db: Engine) -> None:
    def both(conn: Connection) -> None:
        conn.execute(
            text(
                "INSERT INTO orders (id, wallet_id, nonce, kind, amount, counterparty, status, "
                "entry_id) SELECT gen_random_uuid(), w, 'n' || w, 'payment', 5, 'x', "
                "'completed', 1 FROM unnest(ARRAY[:a, :b]) AS w"
            ),
            {"a": WALLET, "b": "NOPE0000000000000002"},
        )

    refused(db, both, "unknown wallet NOPE0000000000000002")


def test_net_item_for_unknown_order_is_refused(db: Engine) -> None:
    refused(db, lambda c: add_net_item(c, uuid.uuid4()), "unknown order")


def test_inbound_for_unknown_entry_is_refused(db: Engine) -> None:
    refused(db, lambda c: add_inbound(c, 999), "unknown journal entry 999")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE orders SET wallet_id = 'TEST0000000000000002'",
        "UPDATE orders SET entry_id = NULL",
        "UPDATE inbound_settlements SET entry_id = NULL",
        "DELETE FROM wallets",
        "UPDATE wallets SET id = 'TEST0000000000000009'",
        "DELETE FROM orders",
        "UPDATE orders SET id = gen_random_uuid()",
    ],
)
def test_referenced_rows_and_references_stay(db: Engine, statement: str) -> None:
    with db.begin() as conn:
        add_net_item(conn, add_order(conn))
        add_inbound(conn, 1)
    refused(db, lambda c: c.execute(text(statement)), "")


@pytest.mark.parametrize("table", ["wallets", "orders"])
def test_tables_cannot_be_truncated(db: Engine, table: str) -> None:
    with db.begin() as conn:
        add_order(conn)
    before = counts(db)
    with pytest.raises(DBAPIError), db.begin() as conn:
        conn.execute(text(f"TRUNCATE {table} CASCADE"))
    assert counts(db) == before


def test_status_updates_still_work(db: Engine) -> None:
    with db.begin() as conn:
        order_id = add_order(conn)
        add_net_item(conn, order_id)
        conn.execute(text("UPDATE orders SET status = 'settled' WHERE id = :o"), {"o": order_id})
    with db.connect() as conn:
        status = conn.execute(
            text("SELECT status FROM orders WHERE id = :o"), {"o": order_id}
        ).scalar_one()
    assert status == "settled"
