"""Offline ("dual offline") payments, the operator side (operators/offline, docs/offline.md).

`offline_devices`: devices registered to a wallet, with the certificate this operator signed
and the purse account (`offline:<device id>`, kind `offline_purse`). `offline_fundings`: value
moved from the wallet into the purse, one signed record per funding (seq 1, 2, ... per device).
`offline_transfers`: the adjudication log of our own devices' transfers, one row per distinct
(payer device, counter, hash); a second hash for one counter is a double spend.
`offline_claims`: payments to our devices from other operators' devices, forwarded to the
payer's operator. `offline_double_spends`: one row per detected device (the first detection's
kind and time; later shortfalls of the same device add to its loss, recovery and hashes, so the
count and the total loss do not depend on the order the logs arrive in).

Orders gain kinds `offline_payment` (an adjudicated transfer, wallet = the payer's online
wallet) and `offline_fund` (a funding order).

Revision ID: op0011
Revises: op0010
Create Date: 2026-12-05
"""

from alembic import op

revision = "op0011"
down_revision = "op0010"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE orders DROP CONSTRAINT ck_orders_kind;
ALTER TABLE orders ADD CONSTRAINT ck_orders_kind
    CHECK (kind IN ('payment', 'load', 'unload', 'offline_payment', 'offline_fund'));

CREATE TABLE offline_devices (
    id                     text PRIMARY KEY,
    wallet_id              varchar(20) NOT NULL REFERENCES wallets (id),
    name                   text NOT NULL,
    public_key             text NOT NULL UNIQUE,
    serial                 text NOT NULL UNIQUE,
    certificate            jsonb NOT NULL,
    certificate_signature  text NOT NULL,
    account_id             bigint NOT NULL UNIQUE REFERENCES accounts (id),
    status                 text NOT NULL DEFAULT 'active',
    revoked_at             timestamptz,
    revoke_reason          text,
    fundings               integer NOT NULL DEFAULT 0,
    last_sync_at           timestamptz,
    created_at             timestamptz NOT NULL,
    CONSTRAINT ck_offline_devices_status CHECK (status IN ('active', 'revoked')),
    CONSTRAINT ck_offline_devices_revoked CHECK ((status = 'revoked') = (revoked_at IS NOT NULL)),
    CONSTRAINT ck_offline_devices_fundings CHECK (fundings >= 0)
);
CREATE INDEX ix_offline_devices_wallet ON offline_devices (wallet_id);

CREATE TABLE offline_fundings (
    device_id   text NOT NULL REFERENCES offline_devices (id),
    seq         integer NOT NULL,
    nonce       text NOT NULL,
    amount      bigint NOT NULL,
    record      jsonb NOT NULL,
    signature   text NOT NULL,
    order_id    uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, seq),
    CONSTRAINT uq_offline_fundings_nonce UNIQUE (device_id, nonce),
    CONSTRAINT ck_offline_fundings_seq CHECK (seq >= 1),
    CONSTRAINT ck_offline_fundings_amount CHECK (amount > 0)
);

CREATE TABLE offline_transfers (
    payer_device   text NOT NULL REFERENCES offline_devices (id),
    counter        bigint NOT NULL,
    transfer_hash  text NOT NULL,
    payee          text NOT NULL,
    payee_wallet   text NOT NULL,
    amount         bigint NOT NULL,
    at             timestamptz NOT NULL,
    transfer       jsonb NOT NULL,
    signature      text NOT NULL,
    source         text NOT NULL,
    outcome        text NOT NULL,
    detection      text,
    taken          bigint NOT NULL,
    recovered      bigint NOT NULL,
    loss           bigint NOT NULL,
    order_id       uuid,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (payer_device, counter, transfer_hash),
    CONSTRAINT ck_offline_transfers_counter CHECK (counter > 0),
    CONSTRAINT ck_offline_transfers_amount CHECK (amount > 0),
    CONSTRAINT ck_offline_transfers_parts CHECK (
        taken >= 0 AND recovered >= 0 AND loss >= 0),
    CONSTRAINT ck_offline_transfers_outcome CHECK (
        outcome IN ('settled', 'pending_settlement', 'returned')),
    CONSTRAINT ck_offline_transfers_detection CHECK (
        detection IS NULL OR detection IN ('counter_reuse', 'overspend'))
);

CREATE TABLE offline_claims (
    payer_device   text NOT NULL,
    counter        bigint NOT NULL,
    transfer_hash  text NOT NULL,
    payee_device   text NOT NULL REFERENCES offline_devices (id),
    payment        jsonb NOT NULL,
    status         text NOT NULL,
    answer         jsonb,
    order_id       uuid,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (payer_device, counter, transfer_hash),
    CONSTRAINT ck_offline_claims_counter CHECK (counter > 0),
    CONSTRAINT ck_offline_claims_status CHECK (
        status IN ('forwarding', 'accepted', 'duplicate', 'refused'))
);
CREATE INDEX ix_offline_claims_forwarding ON offline_claims (status) WHERE status = 'forwarding';

CREATE TABLE offline_double_spends (
    id              bigserial PRIMARY KEY,
    device_id       text NOT NULL UNIQUE REFERENCES offline_devices (id),
    kind            text NOT NULL,
    detections      integer NOT NULL DEFAULT 1,
    detected_at     timestamptz NOT NULL,
    first_at        timestamptz NOT NULL,
    loss            bigint NOT NULL,
    recovered       bigint NOT NULL,
    transfer_hashes text[] NOT NULL,
    CONSTRAINT ck_offline_double_spends_kind CHECK (kind IN ('counter_reuse', 'overspend')),
    CONSTRAINT ck_offline_double_spends_amounts CHECK (loss >= 0 AND recovered >= 0)
);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE offline_double_spends")
    op.execute("DROP TABLE offline_claims")
    op.execute("DROP TABLE offline_transfers")
    op.execute("DROP TABLE offline_fundings")
    op.execute("DROP TABLE offline_devices")
    op.execute("ALTER TABLE orders DROP CONSTRAINT ck_orders_kind")
    op.execute(
        "ALTER TABLE orders ADD CONSTRAINT ck_orders_kind "
        "CHECK (kind IN ('payment', 'load', 'unload'))"
    )
