"""Escrow (operators/programmable, docs/programmable.md): value a payer locks for a payee until
a deadline, released to the payee (by the payer, or by the arbiter when there is one), refunded
to the payer (by the arbiter or the payee before the deadline, automatically at the deadline).

`escrows`: one row per escrow, with its own ledger account (`escrow:<id>`, kind `escrow`, never
negative) whose balance is always amount - released - refunded; status `open` while something
remains, else `released` (all of it went to the payee) or `refunded` (the rest went back).
`escrow_events`: one row per release, refund or expiry, idempotent on the signer's nonce (an
expiry, unsigned, happens at most once per escrow).

Orders gain the kind `escrow` (the payer's signed order creating one: wallet -> escrow account,
counted in the payer's limits like a payment). A release is an ordinary `payment` order of the
payer (nonce `escrow:<escrow id>:<signer>:<nonce>`), so it settles and is refunded like one.

Revision ID: op0013
Revises: op0012
Create Date: 2026-12-07
"""

from alembic import op

revision = "op0013"
down_revision = "op0012"
branch_labels = None
depends_on = None

KINDS = "'payment', 'load', 'unload', 'offline_payment', 'offline_fund', 'cash_withdrawal'"

UPGRADE = f"""
ALTER TABLE orders DROP CONSTRAINT ck_orders_kind;
ALTER TABLE orders ADD CONSTRAINT ck_orders_kind CHECK (kind IN ({KINDS}, 'escrow'));

CREATE TABLE escrows (
    id           uuid PRIMARY KEY,
    payer        varchar(20) NOT NULL REFERENCES wallets (id),
    payee        text NOT NULL,
    arbiter      varchar(20) REFERENCES wallets (id),
    amount       bigint NOT NULL,
    released     bigint NOT NULL DEFAULT 0,
    refunded     bigint NOT NULL DEFAULT 0,
    deadline     timestamptz NOT NULL,
    memo         text,
    status       text NOT NULL DEFAULT 'open',
    account_id   bigint NOT NULL UNIQUE REFERENCES accounts (id),
    order_id     uuid NOT NULL UNIQUE REFERENCES orders (id),
    created_at   timestamptz NOT NULL,
    closed_at    timestamptz,
    CONSTRAINT ck_escrows_amount CHECK (amount > 0),
    CONSTRAINT ck_escrows_parts CHECK (
        released >= 0 AND refunded >= 0 AND released + refunded <= amount),
    CONSTRAINT ck_escrows_status CHECK (status IN ('open', 'released', 'refunded')),
    CONSTRAINT ck_escrows_open CHECK ((status = 'open') = (released + refunded < amount)),
    CONSTRAINT ck_escrows_closed CHECK ((status = 'open') = (closed_at IS NULL)),
    CONSTRAINT ck_escrows_released CHECK (status <> 'released' OR refunded = 0)
);
CREATE INDEX ix_escrows_due ON escrows (deadline) WHERE status = 'open';
CREATE INDEX ix_escrows_payer ON escrows (payer, created_at);
CREATE INDEX ix_escrows_payee ON escrows (payee, created_at);
CREATE INDEX ix_escrows_arbiter ON escrows (arbiter, created_at) WHERE arbiter IS NOT NULL;

CREATE TABLE escrow_events (
    id          bigserial PRIMARY KEY,
    escrow_id   uuid NOT NULL REFERENCES escrows (id),
    kind        text NOT NULL,
    amount      bigint NOT NULL,
    by_wallet   varchar(20),
    nonce       text,
    body        jsonb,
    signature   text,
    order_hash  text,
    order_id    uuid REFERENCES orders (id),
    entry_id    bigint,
    created_at  timestamptz NOT NULL,
    CONSTRAINT ck_escrow_events_kind CHECK (kind IN ('release', 'refund', 'expiry')),
    CONSTRAINT ck_escrow_events_amount CHECK (amount > 0),
    CONSTRAINT ck_escrow_events_signed CHECK ((kind = 'expiry') = (nonce IS NULL)),
    CONSTRAINT uq_escrow_events_nonce UNIQUE (escrow_id, by_wallet, nonce)
);
CREATE UNIQUE INDEX uq_escrow_events_expiry ON escrow_events (escrow_id) WHERE kind = 'expiry';
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    # refused while escrow orders are recorded: dropping them would lose the ledger's orders
    op.execute("DROP TABLE escrow_events")
    op.execute("DROP TABLE escrows")
    op.execute("ALTER TABLE orders DROP CONSTRAINT ck_orders_kind")
    op.execute(f"ALTER TABLE orders ADD CONSTRAINT ck_orders_kind CHECK (kind IN ({KINDS}))")
