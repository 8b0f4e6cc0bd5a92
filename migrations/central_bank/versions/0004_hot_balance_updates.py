"""Leave room on the pages of `accounts` for in-place (HOT) balance updates, as op0005 does
for the operators: every posting statement updates the balance of each account it touches,
and the balance is not indexed.

Revision ID: cb0004
Revises: cb0003
Create Date: 2026-11-21
"""

from alembic import op

revision = "cb0004"
down_revision = "cb0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE accounts SET (fillfactor = 50)")


def downgrade() -> None:
    op.execute("ALTER TABLE accounts RESET (fillfactor)")
