"""Drop `ix_orders_payee_time`: op0002 created it for the fan-in rule, but op0001's
`ix_orders_counterparty` is the same index (counterparty, created_at WHERE kind = 'payment'),
so every order insert maintained two copies.

Revision ID: op0004
Revises: op0003
Create Date: 2026-11-21
"""

from alembic import op

revision = "op0004"
down_revision = "op0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_orders_payee_time")


def downgrade() -> None:
    op.execute(
        "CREATE INDEX ix_orders_payee_time ON orders (counterparty, created_at) "
        "WHERE kind = 'payment'"
    )
