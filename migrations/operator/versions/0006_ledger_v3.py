"""Ledger v3: postings' references checked per statement (see migrations/ledger_v3.py).

Revision ID: op0006
Revises: op0005
Create Date: 2026-11-21
"""

from alembic import op

from migrations.ledger_v3 import LEDGER_V3_DOWN, LEDGER_V3_UP

revision = "op0006"
down_revision = "op0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(LEDGER_V3_UP)


def downgrade() -> None:
    op.execute(LEDGER_V3_DOWN)
