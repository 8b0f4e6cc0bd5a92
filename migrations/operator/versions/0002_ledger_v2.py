"""Ledger v2: postings applied and checked per statement (see migrations/ledger_v2.py).

Revision ID: op0002
Revises: op0001
Create Date: 2026-11-21
"""

from alembic import op

from migrations.ledger_v2 import LEDGER_V2_DOWN, LEDGER_V2_UP

revision = "op0002"
down_revision = "op0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(LEDGER_V2_UP)


def downgrade() -> None:
    op.execute(LEDGER_V2_DOWN)
