"""Offline payments: the system-wide list of revoked offline devices.

An operator that detects a double spend by one of its devices revokes it here; every payee
device, at every operator, gets the list (signed by the central bank) at its next sync and
refuses the revoked payer offline. One row per device (`device` is the key: revoking twice is
the same revocation). `version` numbers the entries 1, 2, 3, ... in the order they arrived: the
list's version is the number of entries, so it only grows. The trigger checks each new row
takes the next version (the repository assigns it under an advisory lock), and the table is
append-only: a revocation is never withdrawn.

Revision ID: cb0009
Revises: cb0008
Create Date: 2026-12-05
"""

from alembic import op

revision = "cb0009"
down_revision = "cb0008"
branch_labels = None
depends_on = None

UP = """
CREATE TABLE offline_revocations (
    device       text PRIMARY KEY,
    serial       text NOT NULL,
    operator_id  integer NOT NULL REFERENCES operators (id),
    reason       text NOT NULL,
    revoked_at   timestamptz NOT NULL,
    version      bigint NOT NULL,
    CONSTRAINT uq_offline_revocations_version UNIQUE (version),
    CONSTRAINT ck_offline_revocations_device CHECK (device ~ '^[A-Z0-9]{4}D[0-9A-F]{15}$'),
    CONSTRAINT ck_offline_revocations_serial CHECK (serial ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    CONSTRAINT ck_offline_revocations_reason CHECK (reason ~ '^[a-z][a-z0-9_]{0,63}$'),
    CONSTRAINT ck_offline_revocations_version CHECK (version > 0)
);

CREATE FUNCTION offline_revocations_next_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    expected bigint;
BEGIN
    SELECT coalesce(max(version), 0) + 1 INTO expected FROM offline_revocations;
    IF NEW.version <> expected THEN
        RAISE EXCEPTION 'offline_revocations: version % is not the next one (%)',
            NEW.version, expected USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER trg_offline_revocations_version BEFORE INSERT ON offline_revocations
    FOR EACH ROW EXECUTE FUNCTION offline_revocations_next_version();
CREATE TRIGGER trg_offline_revocations_append_only BEFORE UPDATE OR DELETE ON offline_revocations
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER trg_offline_revocations_no_truncate BEFORE TRUNCATE ON offline_revocations
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
ALTER TABLE offline_revocations ENABLE ALWAYS TRIGGER trg_offline_revocations_append_only;
ALTER TABLE offline_revocations ENABLE ALWAYS TRIGGER trg_offline_revocations_no_truncate;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(
        """
DROP TABLE IF EXISTS offline_revocations;
DROP FUNCTION IF EXISTS offline_revocations_next_version();
"""
    )
