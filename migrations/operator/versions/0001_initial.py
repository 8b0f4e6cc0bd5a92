"""Operator: vault of tokens, retail ledger, customers, wallets, orders, outbox, inbound.

Revision ID: op0001
Revises:
Create Date: 2026-11-21
"""

from alembic import op

from migrations.ledger_v1 import ACCOUNTS_UP, LEDGER_DOWN, LEDGER_UP

revision = "op0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(ACCOUNTS_UP)
    op.execute(LEDGER_UP)
    op.execute(
        """
-- Identity is stored only encrypted (AES-256-GCM under the operator's data key).
CREATE TABLE customers (
    id                  bigserial PRIMARY KEY,
    identity            jsonb NOT NULL,
    deposit_account_id  bigint NOT NULL UNIQUE REFERENCES accounts (id),
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE wallets (
    id                     varchar(20) PRIMARY KEY,
    customer_id            bigint NOT NULL REFERENCES customers (id),
    account_id             bigint NOT NULL UNIQUE REFERENCES accounts (id),
    wallet_class           smallint NOT NULL,
    public_key             text NOT NULL UNIQUE,
    certificate            jsonb NOT NULL,
    certificate_signature  text NOT NULL,
    evidence               text[] NOT NULL DEFAULT '{}',
    escrow                 jsonb,
    status                 text NOT NULL DEFAULT 'active',
    spent_day              date,
    spent_day_total        bigint NOT NULL DEFAULT 0,
    spent_year             integer,
    spent_year_total       bigint NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_wallets_class CHECK (wallet_class BETWEEN 1 AND 4),
    CONSTRAINT ck_wallets_status CHECK (status IN ('active', 'frozen', 'closed')),
    CONSTRAINT ck_wallets_spent CHECK (spent_day_total >= 0 AND spent_year_total >= 0)
);
CREATE INDEX ix_wallets_customer_id ON wallets (customer_id);

-- Signed customer orders (payments, loads, unloads): the nonce makes each order unique per
-- wallet, which is both replay protection and the idempotency key.
CREATE TABLE orders (
    id            uuid PRIMARY KEY,
    wallet_id     varchar(20) NOT NULL REFERENCES wallets (id),
    nonce         text NOT NULL,
    kind          text NOT NULL,
    amount        bigint NOT NULL,
    counterparty  text,
    body          jsonb NOT NULL,
    signature     text NOT NULL,
    order_hash    text NOT NULL,
    status        text NOT NULL,
    failure       text,
    entry_id      bigint REFERENCES journal_entries (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_orders_wallet_nonce UNIQUE (wallet_id, nonce),
    CONSTRAINT ck_orders_amount CHECK (amount > 0),
    CONSTRAINT ck_orders_kind CHECK (kind IN ('payment', 'load', 'unload')),
    CONSTRAINT ck_orders_status CHECK (
        status IN ('completed', 'pending_settlement', 'settled', 'delivered', 'failed',
                   'returned'))
);
CREATE INDEX ix_orders_wallet_time ON orders (wallet_id, created_at);
CREATE INDEX ix_orders_counterparty ON orders (counterparty, created_at) WHERE kind = 'payment';

-- The vault: tokens this operator holds, as signed by the central bank.
CREATE TABLE vault_tokens (
    serial        uuid PRIMARY KEY,
    amount        bigint NOT NULL,
    issued_at     text NOT NULL,
    signature     text NOT NULL,
    status        text NOT NULL DEFAULT 'held',
    reserved_for  text,
    received_via  text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    released_at   timestamptz,
    CONSTRAINT ck_vault_tokens_amount CHECK (amount > 0),
    CONSTRAINT ck_vault_tokens_status CHECK (status IN ('held', 'reserved', 'gone')),
    CONSTRAINT ck_vault_tokens_reserved CHECK ((status = 'reserved') = (reserved_for IS NOT NULL))
);
CREATE INDEX ix_vault_tokens_held ON vault_tokens (amount DESC) WHERE status = 'held';
CREATE INDEX ix_vault_tokens_reserved_for ON vault_tokens (reserved_for)
    WHERE status = 'reserved';

-- Transactional outbox: every call to another party is first written here, in the same
-- transaction as the ledger change that needs it, then carried out (and retried) by a worker.
CREATE TABLE outbox (
    id               bigserial PRIMARY KEY,
    kind             text NOT NULL,
    reference        text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    done_at          timestamptz,
    CONSTRAINT uq_outbox_kind_reference UNIQUE (kind, reference),
    CONSTRAINT ck_outbox_status CHECK (status IN ('pending', 'done', 'failed'))
);
CREATE INDEX ix_outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';

-- Settlements received from other operators (deduplicated by the central bank's id).
CREATE TABLE inbound_settlements (
    settlement_id   uuid PRIMARY KEY,
    payer_operator  varchar(8) NOT NULL,
    reference       text NOT NULL,
    kind            text NOT NULL,
    payee_wallet    text NOT NULL,
    payer_alias     text,
    amount          bigint NOT NULL,
    outcome         text NOT NULL,
    receipt         jsonb NOT NULL,
    entry_id        bigint REFERENCES journal_entries (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_inbound_amount CHECK (amount > 0),
    CONSTRAINT ck_inbound_kind CHECK (kind IN ('payment', 'return')),
    CONSTRAINT ck_inbound_outcome CHECK (outcome IN ('credited', 'returning', 'refunded'))
);

CREATE INDEX ix_inbound_payee_time ON inbound_settlements (payee_wallet, created_at);

-- AML alerts raised here and reported (pseudonymously) to the analysis centre.
CREATE TABLE aml_alerts (
    id          uuid PRIMARY KEY,
    wallet_id   varchar(20) NOT NULL,
    rule        text NOT NULL,
    amount      bigint NOT NULL,
    details     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_aml_alerts_wallet_rule ON aml_alerts (wallet_id, rule, created_at);

-- Append-only, hash-chained log of executed disclosure orders (see cbdc/hashchain.py).
CREATE TABLE disclosure_log (
    seq         bigint PRIMARY KEY,
    prev_hash   text NOT NULL,
    entry       jsonb NOT NULL,
    hash        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER trg_disclosure_log_append_only BEFORE UPDATE OR DELETE ON disclosure_log
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER trg_disclosure_log_no_truncate BEFORE TRUNCATE ON disclosure_log
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();

-- Idempotency of staff requests that move money (cash loads, deposit credits).
CREATE TABLE idempotency_records (
    key_id        text NOT NULL,
    idem_key      text NOT NULL,
    request_hash  text NOT NULL,
    response      jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, idem_key)
);
"""
    )


def downgrade() -> None:
    for table in (
        "idempotency_records",
        "inbound_settlements",
        "outbox",
        "vault_tokens",
        "orders",
        "wallets",
        "customers",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute(LEDGER_DOWN)
