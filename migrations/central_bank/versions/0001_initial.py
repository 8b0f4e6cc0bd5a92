"""Central bank: operators, reserve/circulation ledger, the issuance database of tokens.

Revision ID: cb0001
Revises:
Create Date: 2026-11-21
"""

from alembic import op

from migrations.ledger_v1 import ACCOUNTS_UP, LEDGER_DOWN, LEDGER_UP

revision = "cb0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
CREATE TABLE operators (
    id                     serial PRIMARY KEY,
    code                   varchar(8) NOT NULL UNIQUE,
    name                   text NOT NULL,
    public_key             text NOT NULL UNIQUE,
    certificate            jsonb NOT NULL,
    certificate_signature  text NOT NULL,
    quota                  bigint NOT NULL,
    status                 text NOT NULL DEFAULT 'active',
    created_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_operators_code CHECK (code ~ '^[A-Z0-9]{4}$'),
    CONSTRAINT ck_operators_quota CHECK (quota >= 0),
    CONSTRAINT ck_operators_status CHECK (status IN ('active', 'suspended'))
);
"""
    )
    op.execute(ACCOUNTS_UP)
    op.execute("ALTER TABLE accounts ADD COLUMN operator_id integer REFERENCES operators (id)")
    op.execute(LEDGER_UP)
    op.execute(
        """
CREATE TABLE operations (
    id                 uuid PRIMARY KEY,
    kind               text NOT NULL,
    operator_id        integer NOT NULL REFERENCES operators (id),
    counterparty_id    integer REFERENCES operators (id),
    idempotency_key    text NOT NULL,
    request_hash       text NOT NULL,
    amount             bigint NOT NULL,
    reference          text,
    entry_id           bigint REFERENCES journal_entries (id),
    response           jsonb NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_operations_operator_key UNIQUE (operator_id, idempotency_key),
    CONSTRAINT ck_operations_kind
        CHECK (kind IN ('issuance', 'redemption', 'split', 'settlement', 'reserve_funding')),
    CONSTRAINT ck_operations_amount CHECK (amount >= 0)
);
CREATE INDEX ix_operations_kind_created ON operations (kind, created_at);

CREATE TABLE tokens (
    serial             uuid PRIMARY KEY,
    amount             bigint NOT NULL,
    owner_operator_id  integer NOT NULL REFERENCES operators (id),
    status             text NOT NULL DEFAULT 'live',
    issued_at          timestamptz NOT NULL,
    signature          text NOT NULL,
    created_by         uuid NOT NULL REFERENCES operations (id),
    spent_by           uuid REFERENCES operations (id),
    spent_at           timestamptz,
    CONSTRAINT ck_tokens_amount CHECK (amount > 0),
    CONSTRAINT ck_tokens_status CHECK (status IN ('live', 'spent', 'redeemed')),
    CONSTRAINT ck_tokens_spent CHECK ((status = 'live') = (spent_by IS NULL))
);
CREATE INDEX ix_tokens_owner_live ON tokens (owner_operator_id) WHERE status = 'live';

-- A token that has left the live state never comes back: refuse double spends in the database.
CREATE FUNCTION tokens_forbid_resurrection() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'live' THEN
        RAISE EXCEPTION 'token % is already %', OLD.serial, OLD.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.amount <> OLD.amount OR NEW.serial <> OLD.serial
       OR NEW.owner_operator_id <> OLD.owner_operator_id OR NEW.signature <> OLD.signature THEN
        RAISE EXCEPTION 'token amount, serial, owner and signature are immutable'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER trg_tokens_once BEFORE UPDATE ON tokens
    FOR EACH ROW EXECUTE FUNCTION tokens_forbid_resurrection();
CREATE TRIGGER trg_tokens_no_delete BEFORE DELETE ON tokens
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();

-- Analysis centre: pseudonymous AML reports from operators (wallet ids, never identities).
CREATE TABLE aml_reports (
    id                uuid PRIMARY KEY,
    operator_id       integer NOT NULL REFERENCES operators (id),
    wallet_pseudonym  text NOT NULL,
    rule              text NOT NULL,
    amount            bigint NOT NULL,
    details           jsonb NOT NULL,
    occurred_at       timestamptz NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_aml_reports_rule_time ON aml_reports (rule, occurred_at);
CREATE INDEX ix_aml_reports_wallet ON aml_reports (wallet_pseudonym);
"""
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS aml_reports")
    op.execute("DROP TABLE IF EXISTS tokens")
    op.execute("DROP FUNCTION IF EXISTS tokens_forbid_resurrection()")
    op.execute("DROP TABLE IF EXISTS operations")
    op.execute(LEDGER_DOWN)
    op.execute("DROP TABLE IF EXISTS operators")
