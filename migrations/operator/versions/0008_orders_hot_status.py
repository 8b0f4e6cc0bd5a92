"""Order status changes in place (HOT): no index depends on the status any more, and order
pages keep room for the new versions.

A payment to another operator changes status twice after it is written (settled, then
delivered). `ix_orders_pending_settlement` (op0003) made every such update write a new entry in
each of the table's five indexes; its only reader is the audit's sum of payments awaiting
settlement, which now reads the table (once per audit) instead. With fill factor 80, the
new version fits on the order's own page (decision 53).

Revision ID: op0008
Revises: op0007
Create Date: 2026-11-21
"""

from alembic import op

revision = "op0008"
down_revision = "op0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX ix_orders_pending_settlement")
    op.execute("ALTER TABLE orders SET (fillfactor = 80)")


def downgrade() -> None:
    op.execute("ALTER TABLE orders RESET (fillfactor)")
    op.execute(
        "CREATE INDEX ix_orders_pending_settlement ON orders (id) "
        "WHERE status = 'pending_settlement'"
    )
