"""Identity versions kept for the regulator, and a blind index for evidence uniqueness.

`identity_versions`: every escrow record a wallet ever had (sealed to the regulator, opened by
no service), numbered per wallet, with the time from which it was in force, the class and
evidence verified, and whether the holder (self-service) or staff (at the counter) made it.
Append-only in the database: a trigger refuses UPDATE, DELETE and TRUNCATE, and another
refuses a version that is not the wallet's next number or starts before the previous one. A
disclosure releases the version in force at the order's `as_of`, or all of them
(operators/wallets/identity_history.py). `wallets.escrow` stays the current version.

Wallets opened before this migration get their current escrow record as version 1, in force
from the wallet's opening (`changed_by = 'migration'`): records overwritten before then are
gone.

`evidence_index`: per wallet, a keyed blind index (HMAC-SHA256 under a key derived from the
operator's data key) of each verified ID number, phone and bank account, with the wallet's
class and, for an ID number the name's index and for a bank account the ID number's index
(`holder`). It lets the operator count wallets per person and per phone and bind an account to
one ID number without storing any of them in clear. Wallets opened before this migration are
indexed when their identity next changes.

Revision ID: op0010
Revises: op0009
Create Date: 2026-12-04
"""

from alembic import op

revision = "op0010"
down_revision = "op0009"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE identity_versions (
    wallet_id     varchar(20) NOT NULL REFERENCES wallets (id),
    version       integer NOT NULL CHECK (version >= 1),
    customer_id   bigint NOT NULL REFERENCES customers (id),
    valid_from    timestamptz NOT NULL,
    wallet_class  smallint NOT NULL CHECK (wallet_class BETWEEN 1 AND 4),
    evidence      text[] NOT NULL,
    changed_by    text NOT NULL CHECK (changed_by IN ('self', 'staff', 'migration')),
    escrow        jsonb NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (wallet_id, version)
);

CREATE FUNCTION identity_version_in_order() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_version integer;
    last_from timestamptz;
BEGIN
    SELECT version, valid_from INTO last_version, last_from FROM identity_versions
     WHERE wallet_id = NEW.wallet_id ORDER BY version DESC LIMIT 1;
    IF NEW.version <> COALESCE(last_version, 0) + 1 THEN
        RAISE EXCEPTION 'identity version % of wallet % is not the next (last %)',
            NEW.version, NEW.wallet_id, COALESCE(last_version, 0)
            USING ERRCODE = 'check_violation';
    END IF;
    IF last_from IS NOT NULL AND NEW.valid_from < last_from THEN
        RAISE EXCEPTION 'identity version % of wallet % starts before the previous one',
            NEW.version, NEW.wallet_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER trg_identity_versions_in_order BEFORE INSERT ON identity_versions
    FOR EACH ROW EXECUTE FUNCTION identity_version_in_order();
CREATE TRIGGER trg_identity_versions_append_only BEFORE UPDATE OR DELETE ON identity_versions
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER trg_identity_versions_no_truncate BEFORE TRUNCATE ON identity_versions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();

INSERT INTO identity_versions
    (wallet_id, version, customer_id, valid_from, wallet_class, evidence, changed_by, escrow)
SELECT id, 1, customer_id, created_at, wallet_class, COALESCE(evidence, '{}'), 'migration',
       escrow
  FROM wallets WHERE escrow IS NOT NULL;

CREATE TABLE evidence_index (
    kind          text NOT NULL CHECK (kind IN ('id_number', 'phone', 'bank_account')),
    blind_index   text NOT NULL,
    wallet_id     varchar(20) NOT NULL,
    wallet_class  smallint NOT NULL CHECK (wallet_class BETWEEN 1 AND 4),
    holder        text,
    PRIMARY KEY (kind, blind_index, wallet_id)
);
CREATE INDEX ix_evidence_index_wallet ON evidence_index (wallet_id);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE evidence_index")
    op.execute("DROP TABLE identity_versions")
    op.execute("DROP FUNCTION identity_version_in_order()")
