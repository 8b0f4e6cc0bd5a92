"""Ledger v3: postings' references checked per statement (see migrations/ledger_v3.py).

Revision ID: cb0005
Revises: cb0004
Create Date: 2026-11-21
"""

from alembic import op

from migrations.ledger_v3 import LEDGER_V3_DOWN, LEDGER_V3_UP

revision = "cb0005"
down_revision = "cb0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(LEDGER_V3_UP)


def downgrade() -> None:
    op.execute(LEDGER_V3_DOWN)
