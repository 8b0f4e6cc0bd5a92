"""Orders and inbound settlements indexed by their journal entry.

A wallet's history (`repository.wallet_history`) walks the wallet's postings newest first and
joins each posting's entry to the order or inbound settlement behind it by `entry_id`, which
neither table indexed: every history request read the whole `orders` table (40 ms at 300,000
orders, growing with the table). Entry ids are drawn from a sequence, so new rows append to
these indexes.

Revision ID: op0009
Revises: op0008
Create Date: 2026-11-21
"""

from alembic import op

revision = "op0009"
down_revision = "op0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_orders_entry ON orders (entry_id) WHERE entry_id IS NOT NULL")
    op.execute(
        "CREATE INDEX ix_inbound_entry ON inbound_settlements (entry_id) "
        "WHERE entry_id IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_inbound_entry")
    op.execute("DROP INDEX ix_orders_entry")
