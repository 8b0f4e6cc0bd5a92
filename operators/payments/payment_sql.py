"""The SQL of the batch payment path (`operators.payments.batch.pay_many`), in raw psycopg.

A batch makes two round trips to PostgreSQL before its COMMIT, whatever its size:

  1. `read_batch`, one pipeline of three statements: lock the accounts the batch touches in
     ascending id order (`FOR UPDATE`: every path that locks accounts does so in that order, so
     they cannot deadlock) and return their balances; then, in a statement of its own (so a
     snapshot taken after the lock), the wallets' class, status, spend counters and public
     keys; then the orders already stored under the batch's signed nonces (replays).
  2. `write_batch`, one pipeline: one statement whose data-modifying CTEs draw the journal
     entries' ids and write the entries, their postings, the orders (each with its entry id)
     and the payers' spend counters; then the AML rules' one aggregate query
     (`operators.compliance.repository.PAYMENT_CANDIDATES_SQL`), which sees the orders just written.

The ledger's invariants stay in the database and are checked on this statement as on any
other: the postings' statement trigger refuses an entry that does not balance and applies the
legs to the balances, where `ck_accounts_non_negative` refuses a negative balance (raised here
as `InsufficientFunds`); the orders' statement trigger checks their wallet and entry exist.

Why not SQLAlchemy here: for a batch of a few dozen payments, compiling and wrapping the
statements and their rows in SQLAlchemy cost more CPU than PostgreSQL spent running them
(docs/benchmarks.md). Errors are handed to SQLAlchemy's own handling (`operators.rawsql`), so the
callers see the same `DBAPIError`s, retries on 40001/40P01 still happen, and a lost connection
still invalidates the pool.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from cbdc.sqlarrays import any_array, int_array, nullable_text_array, text_array
from operators.rawsql import raw
from operators.wallets.states import WALLET_STATE_KEYS_SQL, WALLET_STATE_SQL, WalletState


class StoredOrder(NamedTuple):
    """An order already stored under a nonce (duck-types `operators.models.Order` for
    `orders.check_replay` and `orders.payment_receipt`)."""

    wallet_id: str
    nonce: str
    id: uuid.UUID
    order_hash: str | None
    status: str
    failure: str | None
    entry_id: int | None
    counterparty: str | None
    amount: int
    created_at: datetime


@dataclass(slots=True)
class BatchRead:
    balances: dict[int, int]  # locked accounts
    wallets: dict[str, WalletState]
    previous: dict[tuple[str, str], StoredOrder]


# The accounts of the wallets (and of their holders' deposits, when asked) and the extra
# (system) accounts, locked in ascending id order. Account ids of a wallet never change, so
# reading them in the same statement as the lock is safe; everything else about the wallets is
# read by the next statement, as of the lock. The ids are gathered into one array first (an
# InitPlan): a row updated by a concurrent transaction is then re-checked against that array
# alone; rechecking it through a join of the wallets could drop it.
_LOCK_SQL = (
    "WITH l AS (SELECT id, balance FROM accounts WHERE id = ANY(ARRAY(SELECT x FROM ("
    "SELECT w.account_id FROM wallets w WHERE w.id = ANY(%(ids)s::text[]) "
    "UNION ALL SELECT c.deposit_account_id FROM wallets w JOIN customers c "
    "ON c.id = w.customer_id WHERE %(deposits)s AND w.id = ANY(%(ids)s::text[]) "
    "UNION ALL SELECT unnest(%(extra)s::bigint[])) AS a(x))) ORDER BY id FOR UPDATE) "
    "SELECT array_agg(id), array_agg(balance) FROM l"
)
_PREVIOUS_SQL = (
    "SELECT o.wallet_id, o.nonce, o.id, o.order_hash, o.status, o.failure, o.entry_id, "
    "o.counterparty, o.amount, o.created_at FROM orders o "
    "JOIN unnest(%(w)s::text[], %(n)s::text[]) AS k(wallet_id, nonce) "
    "ON o.wallet_id = k.wallet_id AND o.nonce = k.nonce"
)


def read_batch(
    session: Session,
    wallet_ids: Sequence[str],
    *,
    extra_accounts: Sequence[int] = (),
    with_deposits: bool = False,
    with_keys: bool = False,
    nonces: Sequence[tuple[str, str]] = (),
) -> BatchRead:
    """Lock the accounts of `wallet_ids` (and their deposits, and `extra_accounts`), then read
    the wallets as of the lock and the orders stored under `nonces` ((wallet, nonce) pairs):
    three statements, one round trip."""
    ids = text_array(list(wallet_ids))
    state_sql = WALLET_STATE_KEYS_SQL if with_keys else WALLET_STATE_SQL
    with raw(session, _LOCK_SQL) as conn:
        with conn.pipeline(), conn.cursor() as lock, conn.cursor() as states:
            lock.execute(
                _LOCK_SQL,
                {"ids": ids, "deposits": with_deposits, "extra": int_array(extra_accounts)},
            )
            states.execute(state_sql, {"ids": ids})
            previous = None
            if nonces:
                previous = conn.cursor()
                previous.execute(
                    _PREVIOUS_SQL,
                    {
                        "w": text_array([w for w, _ in nonces]),
                        "n": text_array([n for _, n in nonces]),
                    },
                )
            locked, balances = lock.fetchone() or (None, None)
            wallets = {r[0]: WalletState(*r) for r in states.fetchall()}
            stored = previous.fetchall() if previous is not None else []
        if previous is not None:
            previous.close()
    locked_balances = dict(zip(locked or [], balances or [], strict=True))
    # A wallet opened between the lock and the read has no locked account: not there yet.
    wallets = {
        k: w
        for k, w in wallets.items()
        if w.account_id in locked_balances
        and (not with_deposits or w.deposit_account_id in locked_balances)
    }
    return BatchRead(
        balances=locked_balances,
        wallets=wallets,
        previous={(r[0], r[1]): StoredOrder(*r) for r in stored},
    )


class NewOrder(NamedTuple):
    """An accepted payment's order row."""

    id: uuid.UUID
    payer: str
    nonce: str
    amount: int
    payee: str
    status: str
    entry: int  # 1-based index of its journal entry among the batch's entries
    at: str  # ISO time
    body: dict[str, Any] | None
    signature: str | None
    order_hash: str | None


_WRITE_SQL = (
    # ids drawn once per entry: a CTE with a volatile function is materialised
    "WITH e AS (SELECT nextval('journal_entries_id_seq') AS id, k.kind, k.reference, k.n "
    "FROM unnest(%(kinds)s::text[], %(refs)s::text[]) WITH ORDINALITY AS k(kind, reference, n)), "
    "je AS (INSERT INTO journal_entries (id, kind, reference, created_at) "
    "SELECT e.id, e.kind, e.reference, %(at)s FROM e), "
    "po AS (INSERT INTO postings (entry_id, account_id, amount) "
    "SELECT e.id, l.account_id, l.amount FROM unnest(%(leg_n)s::bigint[], "
    "%(leg_account)s::bigint[], %(leg_amount)s::bigint[]) AS l(n, account_id, amount) "
    "JOIN e ON e.n = l.n), "
    "o AS (INSERT INTO orders (id, wallet_id, nonce, kind, amount, counterparty, body, "
    "signature, order_hash, status, entry_id, created_at, updated_at) "
    "SELECT o.id, o.wallet_id, o.nonce, 'payment', o.amount, o.payee, "
    "NULLIF(%(bodies)s::jsonb -> (o.k - 1)::int, 'null'::jsonb), "
    "o.signature, o.order_hash, o.status, e.id, o.at, o.at "
    "FROM unnest(%(ids)s::uuid[], %(wallets)s::text[], %(nonces)s::text[], "
    "%(amounts)s::bigint[], %(payees)s::text[], %(signatures)s::text[], %(hashes)s::text[], "
    "%(statuses)s::text[], %(entries)s::bigint[], %(ats)s::timestamptz[]) WITH ORDINALITY "
    "AS o(id, wallet_id, nonce, amount, payee, signature, order_hash, status, entry_n, at, k) "
    "JOIN e ON e.n = o.entry_n), "
    "c AS (UPDATE wallets w SET spent_day = v.d, spent_day_total = v.dt, spent_year = v.y, "
    "spent_year_total = v.yt FROM unnest(%(c_ids)s::text[], %(c_d)s::date[], "
    "%(c_dt)s::bigint[], %(c_y)s::int[], %(c_yt)s::bigint[]) AS v(id, d, dt, y, yt) "
    "WHERE w.id = v.id) "
    "SELECT count(*) FROM e"
)


def write_batch(
    session: Session,
    *,
    entries: Sequence[tuple[str, str, Sequence[tuple[int, int]]]],
    orders: Sequence[NewOrder],
    counters: Sequence[WalletState],
    at: datetime,
    then: tuple[str, dict[str, Any]] | None = None,
) -> list[tuple[Any, ...]]:
    """Write the batch's journal entries (kind, reference, legs), their postings, its orders
    and its payers' spend counters in one statement; then run `then` (a query and its
    parameters, e.g. the AML rules') in the same round trip and return its rows."""
    kinds: list[str] = []
    refs: list[str] = []
    leg_n: list[int] = []
    leg_account: list[int] = []
    leg_amount: list[int] = []
    for n, (kind, reference, legs) in enumerate(entries, 1):
        kinds.append(kind)
        refs.append(reference)
        for account, amount in legs:
            leg_n.append(n)
            leg_account.append(account)
            leg_amount.append(amount)
    signed = any(o.signature is not None for o in orders)
    params = {
        "kinds": text_array(kinds),
        "refs": text_array(refs),
        "at": at,
        "leg_n": int_array(leg_n),
        "leg_account": int_array(leg_account),
        "leg_amount": int_array(leg_amount),
        "ids": any_array([o.id for o in orders]),
        "wallets": text_array([o.payer for o in orders]),
        "nonces": text_array([o.nonce for o in orders]),
        "amounts": int_array(o.amount for o in orders),
        "payees": text_array([o.payee for o in orders]),
        "signatures": nullable_text_array([o.signature for o in orders]),
        "hashes": nullable_text_array([o.order_hash for o in orders]),
        "statuses": text_array([o.status for o in orders]),
        "entries": int_array(o.entry for o in orders),
        "ats": text_array([o.at for o in orders]),
        "bodies": json.dumps([o.body for o in orders]) if signed else "[]",
        "c_ids": text_array([w.id for w in counters]),
        "c_d": any_array([w.spent_day for w in counters]),
        "c_dt": int_array(w.spent_day_total for w in counters),
        "c_y": any_array([w.spent_year for w in counters]),
        "c_yt": int_array(w.spent_year_total for w in counters),
    }
    with (
        raw(session, _WRITE_SQL) as conn,
        conn.pipeline(),
        conn.cursor() as write,
        conn.cursor() as after,
    ):
        write.execute(_WRITE_SQL, params)
        if then is None:
            return []
        after.execute(then[0], then[1])
        return after.fetchall()
