"""Cash withdrawals at the counter: orders gain the kind `cash_withdrawal` (the wallet holder's
signed consent to take `amount` out of the wallet in banknotes; staff submit it with
`POST /v1/admin/wallets/{id}/cash-withdraw`, operators/exchange). Its nonce is unique per
wallet like every order's, so one consent pays out once.

Revision ID: op0012
Revises: op0011
Create Date: 2026-12-06
"""

from alembic import op

revision = "op0012"
down_revision = "op0011"
branch_labels = None
depends_on = None

KINDS = "'payment', 'load', 'unload', 'offline_payment', 'offline_fund'"


def upgrade() -> None:
    op.execute("ALTER TABLE orders DROP CONSTRAINT ck_orders_kind")
    op.execute(
        "ALTER TABLE orders ADD CONSTRAINT ck_orders_kind "
        f"CHECK (kind IN ({KINDS}, 'cash_withdrawal'))"
    )


def downgrade() -> None:
    # refused while cash withdrawals are recorded: dropping them would lose the ledger's orders
    op.execute("ALTER TABLE orders DROP CONSTRAINT ck_orders_kind")
    op.execute(f"ALTER TABLE orders ADD CONSTRAINT ck_orders_kind CHECK (kind IN ({KINDS}))")
