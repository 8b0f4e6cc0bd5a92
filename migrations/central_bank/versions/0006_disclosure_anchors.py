"""Disclosure-log anchors: each operator's disclosure-log heads, kept outside its database.

After every disclosure an operator registers the new head of its hash-chained disclosure log
(seq, hash), signed with its key (`disclosure_anchors`). A second registration of a seq with
another hash is refused and kept as evidence (`disclosure_anchor_conflicts`). Both tables are
append-only; their triggers are ENABLE ALWAYS, so they fire in replica mode too
(`session_replication_role = replica` does not switch them off).

Revision ID: cb0006
Revises: cb0005
Create Date: 2026-12-04
"""

from alembic import op

revision = "cb0006"
down_revision = "cb0005"
branch_labels = None
depends_on = None

UP = """
CREATE TABLE disclosure_anchors (
    operator_id  integer NOT NULL REFERENCES operators (id),
    seq          bigint NOT NULL,
    hash         text NOT NULL,
    signature    text NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (operator_id, seq),
    CONSTRAINT ck_disclosure_anchors_seq CHECK (seq > 0),
    CONSTRAINT ck_disclosure_anchors_hash CHECK (hash ~ '^[0-9a-f]{64}$')
);

CREATE TABLE disclosure_anchor_conflicts (
    id             bigserial PRIMARY KEY,
    operator_id    integer NOT NULL REFERENCES operators (id),
    seq            bigint NOT NULL,
    hash           text NOT NULL,
    anchored_hash  text NOT NULL,
    signature      text NOT NULL,
    received_at    timestamptz NOT NULL,
    CONSTRAINT uq_disclosure_anchor_conflicts UNIQUE (operator_id, seq, hash),
    CONSTRAINT ck_disclosure_anchor_conflicts_hash CHECK (hash ~ '^[0-9a-f]{64}$')
);
"""

APPEND_ONLY = """
CREATE TRIGGER trg_{table}_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER trg_{table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
ALTER TABLE {table} ENABLE ALWAYS TRIGGER trg_{table}_append_only;
ALTER TABLE {table} ENABLE ALWAYS TRIGGER trg_{table}_no_truncate;
"""

TABLES = ("disclosure_anchors", "disclosure_anchor_conflicts")


def upgrade() -> None:
    op.execute(UP)
    for table in TABLES:
        op.execute(APPEND_ONLY.format(table=table))


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table}")
