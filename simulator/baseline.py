"""A raw PostgreSQL baseline for the engine's payment rate, measured in the same run.

The same rows a batch of payments writes through `operators.payments.batch.pay_many` (accounts
locked in ascending order, one journal entry and two postings per payment through the ledger's
statement trigger, one order row, the payers' spend counters), written by one SQL function per batch
with no Python in between: what this machine's PostgreSQL can do for the same work. It runs on
a throw-away database migrated like an operator's, so the schema, triggers and indexes are the
real ones.
"""

from __future__ import annotations

import statistics
import time
import uuid

from sqlalchemy import create_engine, text

from cbdc.db import create_database, drop_database, migrate

SETUP = """
INSERT INTO accounts (id, code, kind, balance)
SELECT i, 'wallet:' || i, 'wallet', 1000000000 FROM generate_series(1, :n) AS i;
INSERT INTO accounts (id, code, kind, balance)
SELECT :n + i, 'deposit:' || i, 'deposit', 0 FROM generate_series(1, :n) AS i;
SELECT setval('accounts_id_seq', 2 * :n + 10);
INSERT INTO customers (id, identity, deposit_account_id)
SELECT i, '{}'::jsonb, :n + i FROM generate_series(1, :n) AS i;
INSERT INTO wallets (id, customer_id, account_id, wallet_class, public_key, certificate,
                     certificate_signature, status, spent_day_total, spent_year_total)
SELECT 'BASE' || lpad(i::text, 16, '0'), i, i, 4, 'k' || i, '{}'::jsonb, 's', 'active', 0, 0
FROM generate_series(1, :n) AS i;
"""

TRANSFER_BATCH = """
CREATE FUNCTION baseline_transfer_batch(size int, wallets int, at timestamptz)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    first_entry bigint;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS batch (n int, payer bigint, payee bigint, amount bigint)
        ON COMMIT DELETE ROWS;
    INSERT INTO batch
    SELECT n, p, CASE WHEN q = p THEN p % wallets + 1 ELSE q END, 1 + (random() * 2000)::int
    FROM (SELECT n, 1 + (random() * (wallets - 1))::bigint AS p,
                 1 + (random() * (wallets - 1))::bigint AS q
          FROM generate_series(1, size) AS n) x;
    PERFORM 1 FROM accounts WHERE id IN (SELECT payer FROM batch UNION SELECT payee FROM batch)
        ORDER BY id FOR UPDATE;
    SELECT nextval('journal_entries_id_seq') INTO first_entry;
    PERFORM setval('journal_entries_id_seq', first_entry + size);
    INSERT INTO journal_entries (id, kind, reference, created_at)
    SELECT first_entry + n, 'payment', 'base-' || first_entry + n, at FROM batch;
    INSERT INTO postings (entry_id, account_id, amount)
    SELECT first_entry + n, payer, -amount FROM batch
    UNION ALL SELECT first_entry + n, payee, amount FROM batch;
    INSERT INTO orders (id, wallet_id, nonce, kind, amount, counterparty, status, entry_id,
                        created_at, updated_at)
    SELECT gen_random_uuid(), 'BASE' || lpad(payer::text, 16, '0'), 'b-' || (first_entry + n),
           'payment', amount, 'BASE' || lpad(payee::text, 16, '0'), 'completed',
           first_entry + n, at, at FROM batch;
    PERFORM 1 FROM wallets w JOIN customers c ON c.id = w.customer_id
        WHERE w.id IN (SELECT 'BASE' || lpad(payer::text, 16, '0') FROM batch
                       UNION SELECT 'BASE' || lpad(payee::text, 16, '0') FROM batch);
    UPDATE wallets w SET spent_day = at::date, spent_day_total = w.spent_day_total + s.total,
           spent_year = 2027, spent_year_total = w.spent_year_total + s.total
    FROM (SELECT payer, sum(amount) AS total FROM batch GROUP BY payer) s
    WHERE w.id = 'BASE' || lpad(s.payer::text, 16, '0');
    RETURN size;
END $$;
"""


def raw_payment_rate(
    server_url: str, *, wallets: int, payments: int, batch_size: int
) -> dict[str, float]:
    """Payments per second of the SQL function on a fresh operator-schema database: median
    over batches, and overall."""
    url = create_database(server_url, f"baseline_{uuid.uuid4().hex[:8]}")
    migrate(url, "operator")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in SETUP.strip().split(";\n"):
                if statement.strip():
                    conn.execute(text(statement), {"n": wallets})
            conn.execute(text(TRANSFER_BATCH))
        timings: list[float] = []
        started = time.perf_counter()
        done = 0
        while done < payments:
            size = min(batch_size, payments - done)
            t0 = time.perf_counter()
            with engine.begin() as conn:
                conn.execute(
                    text("SELECT baseline_transfer_batch(:s, :w, now())"),
                    {"s": size, "w": wallets},
                )
            timings.append(size / (time.perf_counter() - t0))
            done += size
        overall = done / (time.perf_counter() - started)
    finally:
        engine.dispose()
        drop_database(server_url, url)
    return {
        "payments": float(done),
        "median_batch_payments_per_second": round(statistics.median(timings), 1),
        "payments_per_second": round(overall, 1),
    }
