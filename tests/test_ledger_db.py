"""Ledger invariants enforced by the DATABASE itself (migrations/ledger_v1.py, ledger_v2.py,
ledger_v3.py and the central bank's token triggers), checked with raw SQL on freshly migrated
databases, plus the Python wrappers `cbdc.ledger.post` and `post_many`.

Postings are applied and checked per statement: the legs of an entry are inserted together.
These tests commit, so each one works on its own fresh database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.errors import InsufficientFunds
from tests.databases import new_database

CHECK_VIOLATION = "23514"
INTEGRITY_VIOLATION = "23000"
FOREIGN_KEY_VIOLATION = "23503"


def sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


@pytest.fixture
def operator_db(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(new_database(pg_url, "operator"))
    yield engine
    engine.dispose()


@pytest.fixture
def central_bank_db(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(new_database(pg_url, "central_bank"))
    yield engine
    engine.dispose()


def make_account(conn: Connection, code: str, *, allow_negative: bool = False) -> int:
    return int(
        conn.execute(
            text(
                "INSERT INTO accounts (code, kind, allow_negative) VALUES (:c, 'test', :n) "
                "RETURNING id"
            ),
            {"c": code, "n": allow_negative},
        ).scalar_one()
    )


def new_entry(conn: Connection, kind: str = "test") -> int:
    return int(
        conn.execute(
            text("INSERT INTO journal_entries (kind) VALUES (:k) RETURNING id"), {"k": kind}
        ).scalar_one()
    )


def post_legs(conn: Connection, entry: int, *legs: tuple[int, int]) -> None:
    """All legs in ONE statement, as the ledger requires."""
    values = ", ".join(f"(:e, :a{i}, :m{i})" for i in range(len(legs)))
    params: dict[str, int] = {"e": entry}
    for i, (account, amount) in enumerate(legs):
        params[f"a{i}"], params[f"m{i}"] = account, amount
    conn.execute(
        text(f"INSERT INTO postings (entry_id, account_id, amount) VALUES {values}"), params
    )


def balances(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT code, balance FROM accounts")).all()
    return {r.code: int(r.balance) for r in rows}


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        entries = conn.execute(text("SELECT count(*) FROM journal_entries")).scalar_one()
        postings = conn.execute(text("SELECT count(*) FROM postings")).scalar_one()
    return int(entries), int(postings)


@pytest.fixture
def funded(operator_db: Engine) -> tuple[Engine, int, int, int]:
    """source (contra) -> a: 1000, b: 0; all committed."""
    with operator_db.begin() as conn:
        source = make_account(conn, "source", allow_negative=True)
        a = make_account(conn, "a")
        b = make_account(conn, "b")
        entry = new_entry(conn, "funding")
        post_legs(conn, entry, (source, -1000), (a, 1000))
    return operator_db, source, a, b


def test_balanced_entry_commits_and_updates_balances(funded: tuple[Engine, int, int, int]) -> None:
    engine, _source, a, b = funded
    with engine.begin() as conn:
        entry = new_entry(conn, "transfer")
        post_legs(conn, entry, (a, -400), (b, 400))
    assert balances(engine) == {"source": -1000, "a": 600, "b": 400}


def test_posting_that_makes_a_non_contra_account_negative_fails(
    funded: tuple[Engine, int, int, int],
) -> None:
    engine, _source, a, b = funded
    before, before_counts = balances(engine), counts(engine)
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        entry = new_entry(conn, "overdraw")
        post_legs(conn, entry, (a, -1001), (b, 1001))
    assert sqlstate(caught.value) == CHECK_VIOLATION
    assert "ck_accounts_non_negative" in str(caught.value.orig)
    assert balances(engine) == before
    assert counts(engine) == before_counts


def test_contra_account_may_go_negative(funded: tuple[Engine, int, int, int]) -> None:
    engine, source, a, _b = funded
    with engine.begin() as conn:
        entry = new_entry(conn)
        post_legs(conn, entry, (source, -5000), (a, 5000))
    assert balances(engine)["source"] == -6000


def test_unbalanced_statement_is_refused_at_once(funded: tuple[Engine, int, int, int]) -> None:
    engine, _source, a, b = funded
    before, before_counts = balances(engine), counts(engine)
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        entry = new_entry(conn, "unbalanced")
        post_legs(conn, entry, (a, -100), (b, 99))
    assert sqlstate(caught.value) == CHECK_VIOLATION
    assert "does not balance" in str(caught.value.orig)
    assert balances(engine) == before
    assert counts(engine) == before_counts


def test_legs_split_over_statements_are_refused(funded: tuple[Engine, int, int, int]) -> None:
    """Even a pair that would balance in the end: every statement must balance per entry, so no
    reader ever sees a half-written entry."""
    engine, _source, a, b = funded
    before = balances(engine)
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        entry = new_entry(conn, "split")
        post_legs(conn, entry, (a, -100))
        post_legs(conn, entry, (b, 100))
    assert sqlstate(caught.value) == CHECK_VIOLATION
    assert balances(engine) == before


def test_one_statement_many_entries_nets_per_account(
    funded: tuple[Engine, int, int, int],
) -> None:
    """A statement with many entries: each must balance; an account's legs are summed, and the
    non-negative check applies to the statement's result."""
    engine, _source, a, b = funded
    with engine.begin() as conn:
        e1, e2 = new_entry(conn), new_entry(conn)
        conn.execute(
            text(
                "INSERT INTO postings (entry_id, account_id, amount) VALUES "
                "(:e1, :a, -700), (:e1, :b, 700), (:e2, :b, -200), (:e2, :a, 200)"
            ),
            {"e1": e1, "e2": e2, "a": a, "b": b},
        )
    assert balances(engine) == {"source": -1000, "a": 500, "b": 500}
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        e1, e2 = new_entry(conn), new_entry(conn)
        conn.execute(
            text(
                "INSERT INTO postings (entry_id, account_id, amount) VALUES "
                "(:e1, :a, -300), (:e1, :b, 300), (:e2, :b, -900), (:e2, :a, 900)"
            ),
            {"e1": e1, "e2": e2, "a": a, "b": b},
        )
    assert "ck_accounts_non_negative" in str(caught.value.orig)
    assert balances(engine) == {"source": -1000, "a": 500, "b": 500}


def test_single_leg_entry_is_refused(funded: tuple[Engine, int, int, int]) -> None:
    engine, _source, _a, b = funded
    before = balances(engine)
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        entry = new_entry(conn, "money from nowhere")
        post_legs(conn, entry, (b, 1))
    assert sqlstate(caught.value) == CHECK_VIOLATION
    assert balances(engine) == before


def test_zero_posting_is_refused(funded: tuple[Engine, int, int, int]) -> None:
    engine, _source, a, _b = funded
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        post_legs(conn, new_entry(conn), (a, 0), (a, 0))
    assert sqlstate(caught.value) == CHECK_VIOLATION


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE postings SET amount = amount * 2",
        "UPDATE postings SET account_id = account_id",
        "DELETE FROM postings",
        "UPDATE journal_entries SET kind = 'rewritten'",
        "DELETE FROM journal_entries",
    ],
)
def test_ledger_rows_are_immutable(funded: tuple[Engine, int, int, int], statement: str) -> None:
    engine = funded[0]
    before, before_counts = balances(engine), counts(engine)
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        conn.execute(text(statement))
    assert sqlstate(caught.value) == INTEGRITY_VIOLATION
    assert "immutable" in str(caught.value.orig)
    assert balances(engine) == before
    assert counts(engine) == before_counts


def test_posting_to_unknown_account_is_refused(operator_db: Engine) -> None:
    with pytest.raises(DBAPIError) as caught, operator_db.begin() as conn:
        post_legs(conn, new_entry(conn), (987654, 5), (987654, -5))
    assert sqlstate(caught.value) == FOREIGN_KEY_VIOLATION
    assert "unknown account 987654" in str(caught.value.orig)


@pytest.mark.parametrize("database", ["operator", "central_bank"])
def test_references_are_checked_per_statement(pg_url: str, database: str) -> None:
    """Ledger v3 checks a statement's entries and accounts in its trigger (no per-row foreign
    keys): an unknown account among known ones, an unknown account whose legs net to zero in
    the statement, and an unknown journal entry are all refused, and nothing moves."""
    engine = create_engine(new_database(pg_url, database))
    try:
        with engine.begin() as conn:
            a, b = make_account(conn, "a", allow_negative=True), make_account(conn, "b")
            post_legs(conn, new_entry(conn), (a, -100), (b, 100))
        before, before_counts = balances(engine), counts(engine)
        attempts = [
            lambda conn: post_legs(conn, new_entry(conn), (a, -5), (987654, 5)),
            lambda conn: post_legs(
                conn, new_entry(conn), (a, -5), (b, 5), (987654, 3), (987654, -3)
            ),
            lambda conn: post_legs(conn, 987655, (a, -5), (b, 5)),
        ]
        expected = ["account 987654", "account 987654", "entry 987655"]
        for attempt, missing in zip(attempts, expected, strict=True):
            with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
                attempt(conn)
            assert sqlstate(caught.value) == FOREIGN_KEY_VIOLATION
            assert f"unknown {'journal ' if 'entry' in missing else ''}{missing}" in str(
                caught.value.orig
            )
        assert balances(engine) == before
        assert counts(engine) == before_counts
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM accounts WHERE code = 'b'",
        "UPDATE accounts SET id = id + 1000 WHERE code = 'b'",
        "TRUNCATE accounts CASCADE",
        "TRUNCATE journal_entries CASCADE",
        "TRUNCATE postings",
    ],
)
def test_posted_rows_cannot_go_away(operator_db: Engine, statement: str) -> None:
    """What the foreign keys also guarded: an account with postings stays, under its id, and
    no ledger table can be emptied."""
    with operator_db.begin() as conn:
        a, b = make_account(conn, "a", allow_negative=True), make_account(conn, "b")
        post_legs(conn, new_entry(conn), (a, -100), (b, 100))
    before, before_counts = balances(operator_db), counts(operator_db)
    with pytest.raises(DBAPIError), operator_db.begin() as conn:
        conn.execute(text(statement))
    assert balances(operator_db) == before
    assert counts(operator_db) == before_counts


def test_account_without_postings_can_go(operator_db: Engine) -> None:
    with operator_db.begin() as conn:
        make_account(conn, "spare")
        conn.execute(text("UPDATE accounts SET balance = 0 WHERE code = 'spare'"))
        conn.execute(text("DELETE FROM accounts WHERE code = 'spare'"))
    assert "spare" not in balances(operator_db)


# ------------------------------------------------------------------ central bank tokens


def _token_fixture(conn: Connection) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    operator_id = conn.execute(
        text(
            "INSERT INTO operators (code, name, public_key, certificate, certificate_signature, "
            "quota) VALUES ('TST1', 'Test', 'pk-test', '{}'::jsonb, 'sig', 1000) RETURNING id"
        )
    ).scalar_one()
    ops = []
    for kind in ("issuance", "split"):
        op_id = uuid.uuid4()
        conn.execute(
            text(
                "INSERT INTO operations (id, kind, operator_id, idempotency_key, request_hash, "
                "amount, response) VALUES (:i, :k, :o, :key, 'h', 100, '{}'::jsonb)"
            ),
            {"i": op_id, "k": kind, "o": operator_id, "key": f"key-{kind}"},
        )
        ops.append(op_id)
    serial = uuid.uuid4()
    conn.execute(
        text(
            "INSERT INTO tokens (serial, amount, owner_operator_id, status, issued_at, signature, "
            "created_by) VALUES (:s, 100, :o, 'live', now(), 'sig', :c)"
        ),
        {"s": serial, "o": operator_id, "c": ops[0]},
    )
    return serial, ops[0], ops[1]


def _token_status(engine: Engine, serial: uuid.UUID) -> tuple[str, uuid.UUID | None]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT status, spent_by FROM tokens WHERE serial = :s"), {"s": serial}
        ).one()
    return row.status, row.spent_by


def test_spent_token_cannot_come_back_or_be_spent_again(central_bank_db: Engine) -> None:
    with central_bank_db.begin() as conn:
        serial, issuance_op, split_op = _token_fixture(conn)
    with central_bank_db.begin() as conn:
        conn.execute(
            text(
                "UPDATE tokens SET status = 'spent', spent_by = :b, spent_at = now() "
                "WHERE serial = :s"
            ),
            {"s": serial, "b": split_op},
        )
    assert _token_status(central_bank_db, serial) == ("spent", split_op)

    # back to live: refused by the trigger
    with pytest.raises(DBAPIError) as caught, central_bank_db.begin() as conn:
        conn.execute(
            text(
                "UPDATE tokens SET status = 'live', spent_by = NULL, spent_at = NULL "
                "WHERE serial = :s"
            ),
            {"s": serial},
        )
    assert sqlstate(caught.value) == CHECK_VIOLATION
    assert "already spent" in str(caught.value.orig)

    # spent a second time (by another operation): refused
    with pytest.raises(DBAPIError) as caught, central_bank_db.begin() as conn:
        conn.execute(
            text("UPDATE tokens SET spent_by = :b, spent_at = now() WHERE serial = :s"),
            {"s": serial, "b": issuance_op},
        )
    assert sqlstate(caught.value) == CHECK_VIOLATION

    # redeemed after being spent: refused
    with pytest.raises(DBAPIError), central_bank_db.begin() as conn:
        conn.execute(text("UPDATE tokens SET status = 'redeemed' WHERE serial = :s"), {"s": serial})

    # deleted: refused
    with pytest.raises(DBAPIError) as caught, central_bank_db.begin() as conn:
        conn.execute(text("DELETE FROM tokens WHERE serial = :s"), {"s": serial})
    assert sqlstate(caught.value) == INTEGRITY_VIOLATION

    assert _token_status(central_bank_db, serial) == ("spent", split_op)


def test_live_token_amount_is_immutable_and_spent_needs_spender(central_bank_db: Engine) -> None:
    with central_bank_db.begin() as conn:
        serial, _issuance_op, _split_op = _token_fixture(conn)
    with pytest.raises(DBAPIError) as caught, central_bank_db.begin() as conn:
        conn.execute(text("UPDATE tokens SET amount = 1000000 WHERE serial = :s"), {"s": serial})
    assert sqlstate(caught.value) == CHECK_VIOLATION
    # status 'spent' without naming the spending operation breaks ck_tokens_spent
    with pytest.raises(DBAPIError) as caught, central_bank_db.begin() as conn:
        conn.execute(text("UPDATE tokens SET status = 'spent' WHERE serial = :s"), {"s": serial})
    assert sqlstate(caught.value) == CHECK_VIOLATION
    assert _token_status(central_bank_db, serial) == ("live", None)


# ------------------------------------------------------------------ cbdc.ledger.post


def test_ledger_post_raises_domain_errors(operator_db: Engine) -> None:
    with Session(operator_db) as session, session.begin():
        source = ledger.ensure_account(session, code="source", kind="test", allow_negative=True)
        a = ledger.ensure_account(session, code="a", kind="test")
        b = ledger.ensure_account(session, code="b", kind="test")
        assert ledger.ensure_account(session, code="a", kind="test") == a  # idempotent
        ledger.post(session, kind="funding", reference="f", legs=[(source, -500), (a, 500)])

    with Session(operator_db) as session, session.begin():
        with pytest.raises(ledger.UnbalancedEntry):
            ledger.post(session, kind="bad", reference=None, legs=[(a, -10), (b, 9)])
        with pytest.raises(ledger.UnbalancedEntry):
            ledger.post(session, kind="empty", reference=None, legs=[])
        with pytest.raises(ledger.UnbalancedEntry):
            ledger.post(session, kind="zeros", reference=None, legs=[(a, 0), (b, 0)])

    with Session(operator_db) as session:
        with pytest.raises(InsufficientFunds):
            ledger.post(session, kind="overdraw", reference=None, legs=[(a, -501), (b, 501)])
        session.rollback()

    with Session(operator_db) as session, session.begin():
        entry = ledger.post(session, kind="ok", reference="r", legs=[(a, -500), (b, 500)])
        assert entry > 0
        assert ledger.lock_accounts(session, [b, a, a]) == {a: 0, b: 500}

    with Session(operator_db) as session:
        assert ledger.ledger_integrity(session) == {
            "unbalanced_entries": 0,
            "balance_drift_accounts": 0,
            "negative_balances": 0,
            "sum_of_all_balances": 0,
        }
        assert ledger.balances_by_kind(session) == {"test": 0}
    assert balances(operator_db) == {"source": -500, "a": 0, "b": 500}
