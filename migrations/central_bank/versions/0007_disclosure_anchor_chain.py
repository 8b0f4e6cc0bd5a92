"""Disclosure-anchor chain: the central bank hash-chains each operator's anchors and signs
every new chain head with its own key.

The anchors' append-only triggers stop an ordinary role, not a superuser of the cluster (who
can `ALTER TABLE ... DISABLE TRIGGER`). So each anchor, when registered, becomes link `n` of
its operator's chain: link_n = SHA-256(link_{n-1} || canonical_json(the anchor)), with the
central bank's Ed25519 signature on (operator, n, link_n) (central_bank/analysis/anchors.py).
Editing or
deleting an anchor inside the chain then breaks it, and a recomputed chain lacks the central
bank's signature; `cbdc audit` checks both against the central bank's public key. (Cutting the
last links off is what the regulator's own head file catches.) Anchors registered before this
migration are linked, in seq order, the next time their operator registers one or the anchors
are listed. Append-only like the anchors (ENABLE ALWAYS triggers).

Revision ID: cb0007
Revises: cb0006
Create Date: 2026-12-04
"""

from alembic import op

revision = "cb0007"
down_revision = "cb0006"
branch_labels = None
depends_on = None

UP = """
CREATE TABLE disclosure_anchor_links (
    operator_id  integer NOT NULL REFERENCES operators (id),
    n            bigint NOT NULL,
    seq          bigint NOT NULL,
    prev_link    text NOT NULL,
    link         text NOT NULL,
    signature    text NOT NULL,
    linked_at    timestamptz NOT NULL,
    PRIMARY KEY (operator_id, n),
    CONSTRAINT uq_disclosure_anchor_links_seq UNIQUE (operator_id, seq),
    CONSTRAINT ck_disclosure_anchor_links_n CHECK (n > 0),
    CONSTRAINT ck_disclosure_anchor_links_link CHECK (link ~ '^[0-9a-f]{64}$')
);
CREATE TRIGGER trg_disclosure_anchor_links_append_only
    BEFORE UPDATE OR DELETE ON disclosure_anchor_links
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER trg_disclosure_anchor_links_no_truncate BEFORE TRUNCATE ON disclosure_anchor_links
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();
ALTER TABLE disclosure_anchor_links ENABLE ALWAYS TRIGGER trg_disclosure_anchor_links_append_only;
ALTER TABLE disclosure_anchor_links ENABLE ALWAYS TRIGGER trg_disclosure_anchor_links_no_truncate;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS disclosure_anchor_links")
