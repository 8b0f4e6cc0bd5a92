"""Batched gross settlement: an operation of kind `settlement_batch` holds a batch request's
signed answer (for idempotent replay); each item of the batch is still an operation of kind
`settlement` of its own (its own receipt, tokens and ledger entry).

Revision ID: cb0008
Revises: cb0007
Create Date: 2026-12-04
"""

from alembic import op

revision = "cb0008"
down_revision = "cb0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
ALTER TABLE operations DROP CONSTRAINT ck_operations_kind;
ALTER TABLE operations ADD CONSTRAINT ck_operations_kind CHECK (kind IN (
    'issuance', 'redemption', 'split', 'settlement', 'reserve_funding', 'net_settlement',
    'settlement_batch'));
"""
    )


def downgrade() -> None:
    op.execute(
        """
DELETE FROM operations WHERE kind = 'settlement_batch';
ALTER TABLE operations DROP CONSTRAINT ck_operations_kind;
ALTER TABLE operations ADD CONSTRAINT ck_operations_kind CHECK (kind IN (
    'issuance', 'redemption', 'split', 'settlement', 'reserve_funding', 'net_settlement'));
"""
    )
