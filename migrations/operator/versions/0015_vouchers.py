"""Purpose-bound, expiring vouchers and merchant categories (operators/programmable,
docs/programmable.md).

`merchant_categories`: the category of a merchant wallet of this operator (published to the
central bank's registry, where every operator reads it).
`programmes`: an issuer wallet's programme (categories its vouchers may be spent at, a
per-holder cap, an expiry), created by the issuer's signed order (idempotent on its nonce);
totals granted and returned (at expiry), changed only under the row's exclusive lock (payments
hold it shared, so what was spent is the sum of the vouchers', not kept here); status
`active` until the expiry sweep returns what is unspent (`expired`).
`voucher_accounts`: one ledger account per (programme, holder) (kind `voucher`, never
negative), whose balance is always granted - spent - returned.
`voucher_events`: one row per grant (idempotent on the issuer's nonce), payment (its payment
order of the holder) or expiry (at most one per voucher account).

Revision ID: op0015
Revises: op0014
Create Date: 2026-12-08
"""

from alembic import op

revision = "op0015"
down_revision = "op0014"
branch_labels = None
depends_on = None

CATEGORIES = "'groceries', 'restaurants', 'transport', 'pharmacy', 'utilities', 'retail', 'general'"

UPGRADE = f"""
CREATE TABLE merchant_categories (
    wallet_id   varchar(20) PRIMARY KEY REFERENCES wallets (id),
    category    text NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT ck_merchant_categories_category CHECK (category IN ({CATEGORIES}))
);

CREATE TABLE programmes (
    id           uuid PRIMARY KEY,
    issuer       varchar(20) NOT NULL REFERENCES wallets (id),
    name         text NOT NULL,
    categories   jsonb NOT NULL,
    per_holder   bigint NOT NULL,
    expires_at   timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'active',
    granted      bigint NOT NULL DEFAULT 0,
    returned     bigint NOT NULL DEFAULT 0,
    nonce        text NOT NULL,
    body         jsonb NOT NULL,
    signature    text NOT NULL,
    order_hash   text NOT NULL,
    created_at   timestamptz NOT NULL,
    expired_at   timestamptz,
    CONSTRAINT ck_programmes_per_holder CHECK (per_holder > 0),
    CONSTRAINT ck_programmes_status CHECK (status IN ('active', 'expired')),
    CONSTRAINT ck_programmes_expired CHECK ((status = 'expired') = (expired_at IS NOT NULL)),
    CONSTRAINT ck_programmes_parts CHECK (granted >= 0 AND returned >= 0 AND returned <= granted),
    CONSTRAINT uq_programmes_nonce UNIQUE (issuer, nonce)
);
CREATE INDEX ix_programmes_due ON programmes (expires_at) WHERE status = 'active';

CREATE TABLE voucher_accounts (
    programme_id  uuid NOT NULL REFERENCES programmes (id),
    holder        varchar(20) NOT NULL REFERENCES wallets (id),
    account_id    bigint NOT NULL UNIQUE REFERENCES accounts (id),
    granted       bigint NOT NULL DEFAULT 0,
    spent         bigint NOT NULL DEFAULT 0,
    returned      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (programme_id, holder),
    CONSTRAINT ck_voucher_accounts_parts CHECK (
        granted >= 0 AND spent >= 0 AND returned >= 0 AND spent + returned <= granted)
);
CREATE INDEX ix_voucher_accounts_holder ON voucher_accounts (holder);

CREATE TABLE voucher_events (
    id            bigserial PRIMARY KEY,
    programme_id  uuid NOT NULL REFERENCES programmes (id),
    holder        varchar(20) NOT NULL,
    kind          text NOT NULL,
    amount        bigint NOT NULL,
    nonce         text,
    body          jsonb,
    signature     text,
    order_hash    text,
    order_id      uuid REFERENCES orders (id),
    entry_id      bigint,
    created_at    timestamptz NOT NULL,
    CONSTRAINT ck_voucher_events_kind CHECK (kind IN ('grant', 'payment', 'expiry')),
    CONSTRAINT ck_voucher_events_amount CHECK (amount > 0),
    CONSTRAINT ck_voucher_events_signed CHECK ((kind = 'expiry') = (nonce IS NULL))
);
CREATE UNIQUE INDEX uq_voucher_events_grant ON voucher_events (programme_id, nonce)
    WHERE kind = 'grant';
CREATE UNIQUE INDEX uq_voucher_events_expiry ON voucher_events (programme_id, holder)
    WHERE kind = 'expiry';
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE voucher_events")
    op.execute("DROP TABLE voucher_accounts")
    op.execute("DROP TABLE programmes")
    op.execute("DROP TABLE merchant_categories")
