"""Merchant categories (issue #17): the registry every operator reads when a purpose-bound
voucher is spent. One row per merchant wallet, written only by the operator that holds the
wallet (its routing code), read by any signed caller. The category is one of the fixed list of
`cbdc.merchants` (checked here too).

Revision ID: cb0011
Revises: cb0010
Create Date: 2026-12-08
"""

from alembic import op

revision = "cb0011"
down_revision = "cb0010"
branch_labels = None
depends_on = None

CATEGORIES = "'groceries', 'restaurants', 'transport', 'pharmacy', 'utilities', 'retail', 'general'"

UP = f"""
CREATE TABLE merchant_categories (
    wallet_id   varchar(20) PRIMARY KEY,
    category    text NOT NULL,
    operator    text NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT ck_merchant_categories_category CHECK (category IN ({CATEGORIES})),
    CONSTRAINT ck_merchant_categories_operator CHECK (substr(wallet_id, 1, 4) = operator)
);
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute("DROP TABLE merchant_categories")
